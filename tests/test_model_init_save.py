"""gpuinit/model_init/save.py: a meta model's initialized tensors written block by block to safetensors files
that load as exactly what init_module gives in memory (Hugging Face's from_pretrained included)."""
import json
import os

import pytest
import torch
from safetensors.torch import load_file
from torch import nn

import gpuinit
from gpuinit.model_init import save


def mixed():
    with torch.device("meta"):
        return nn.Sequential(nn.Linear(64, 300), nn.LayerNorm(300), nn.Embedding(50, 300, padding_idx=3),
                             nn.BatchNorm1d(300), nn.Linear(300, 7, bias=False))


def loaded(files):
    out = {}
    for f in files:
        if f.endswith(".safetensors"):
            out.update(load_file(f))
    return out


def reference(make, recipe="torch", seed=5, dtype=None):
    m = make()
    if dtype is not None:
        m = m.to(dtype)
    gpuinit.init_module(m, recipe, seed=seed, device="cpu")
    return m.state_dict()


@pytest.mark.parametrize("memory", ["64MiB", 4096, 1000])
def test_blocks_and_shards_hold_what_init_module_gives(tmp_path, memory):
    files = gpuinit.save_init(mixed(), tmp_path, "torch", seed=5, memory=memory, max_shard_size=50_000)
    want = reference(mixed)
    got = loaded(files)
    assert sorted(got) == sorted(want)
    for k in want:
        assert torch.equal(got[k], want[k]), k
    assert got["2.weight"][3].eq(0).all()  # the padding row
    index = json.loads((tmp_path / "model.safetensors.index.json").read_text())
    assert set(index["weight_map"]) == set(want) and len(files) == 5
    assert index["metadata"]["total_size"] == sum(v.numel() * v.element_size() for v in want.values())
    shard_bytes = {}
    for k, f in index["weight_map"].items():
        shard_bytes[f] = shard_bytes.get(f, 0) + want[k].numel() * want[k].element_size()
    assert all(n <= 50_000 or len([k for k in index["weight_map"] if index["weight_map"][k] == f]) == 1
               for f, n in shard_bytes.items())


def test_bf16_tied_one_file_and_the_same_files_from_two_workers(tmp_path):
    def make():
        with torch.device("meta"):
            m = nn.Sequential(nn.Embedding(40, 24), nn.Linear(24, 40, bias=False)).to(torch.bfloat16)
        m[1].weight = m[0].weight
        return m

    one = gpuinit.save_init(make(), tmp_path / "a", "torch", seed=2, memory=200)
    two = gpuinit.save_init(make(), tmp_path / "b", "torch", seed=2, memory=200, workers=2)
    assert [os.path.basename(f) for f in one] == ["model.safetensors"] == [os.path.basename(f) for f in two]
    assert open(one[0], "rb").read() == open(two[0], "rb").read()
    got = load_file(one[0])
    assert list(got) == ["0.weight"] and got["0.weight"].dtype == torch.bfloat16  # the tie stored once
    assert torch.equal(got["0.weight"], reference(make, seed=2)["0.weight"])


@pytest.mark.parametrize("recipe", ["hf", "own", "torch"])
def test_hugging_face_loads_it_with_no_missing_key_and_ties_kept(tmp_path, recipe):
    transformers = pytest.importorskip("transformers")
    config = transformers.LlamaConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                                      num_key_value_heads=2, vocab_size=300, tie_word_embeddings=True, pad_token_id=0)

    def make():
        with torch.device("meta"):
            return transformers.LlamaForCausalLM(config)

    gpuinit.save_init(make(), tmp_path, recipe, seed=1, memory="4KiB")
    model, info = transformers.AutoModelForCausalLM.from_pretrained(tmp_path, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"]
    assert model.lm_head.weight is model.model.embed_tokens.weight
    ref = make()
    gpuinit.init_module(ref, recipe, seed=1, device="cpu")
    assert gpuinit.fingerprint(model) == gpuinit.fingerprint(ref)
    assert model.model.embed_tokens.weight[0].eq(0).all()  # the padding row, zeroed by the model's own code


def test_persistent_buffers_and_padding_rows_of_bert(tmp_path):
    transformers = pytest.importorskip("transformers")
    config = transformers.BertConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                                     vocab_size=200, max_position_embeddings=40)

    def make():
        with torch.device("meta"):
            return transformers.BertModel(config)

    files = gpuinit.save_init(make(), tmp_path, "hf", seed=4, memory="2KiB")
    want = reference(make, "hf", seed=4)
    got = loaded(files)
    assert sorted(got) == sorted(want)
    assert all(torch.equal(got[k], want[k]) for k in want)


class Edits(nn.Module):
    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.empty(6, 4))

    def reset_parameters(self):
        nn.init.normal_(self.w)
        with torch.no_grad():
            self.w.mul_(2)  # not a whole fill: no block alone knows it


def test_code_that_does_more_than_one_whole_fill_is_refused_by_name_unless_a_rule_covers_it(tmp_path):
    with torch.device("meta"):
        m = Edits()
    with pytest.raises(gpuinit.InitError, match=r"does not leave w as one whole fill.*add a rule"):
        gpuinit.save_init(m, tmp_path, "own", seed=0)
    assert not list(tmp_path.iterdir())  # refused before anything is written
    files = gpuinit.save_init(m, tmp_path, "own", seed=0, rules=[("w", "normal", {"std": 2.0})])
    assert load_file(files[0])["w"].std().item() == pytest.approx(2.0, rel=0.5)


@pytest.mark.parametrize("kw,match", [({"memory": "lots"}, "memory must be"), ({"max_shard_size": 0}, "max_shard_size"),
                                      ({"workers": 0}, "workers must be")])
def test_bad_arguments_are_refused(tmp_path, kw, match):
    with pytest.raises(gpuinit.InitError, match=match):
        gpuinit.save_init(mixed(), tmp_path, seed=0, **kw)


def test_a_materialized_model_is_refused(tmp_path):
    with pytest.raises(gpuinit.InitError, match="meta device"):
        gpuinit.save_init(nn.Linear(2, 2), tmp_path, seed=0)


def test_sizes():
    assert save.size_bytes("5GB", "x") == 5 * 10**9 and save.size_bytes("512MiB", "x") == 512 * 2**20
    assert save.size_bytes(" 1.5 kb ", "x") == 1500


def test_dcp_loads_into_an_fsdp2_model_with_the_fingerprint_of_init_module(tmp_path):
    import torch.distributed as dist
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import get_model_state_dict, set_model_state_dict
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard

    def make():
        with torch.device("meta"):
            m = nn.Sequential(nn.Embedding(40, 24, padding_idx=1), nn.Linear(24, 24), nn.BatchNorm1d(24),
                              nn.Linear(24, 40, bias=False))
        m[3].weight = m[0].weight
        return m

    files = gpuinit.save_init(make(), tmp_path / "ckpt", "torch", seed=8, format="dcp")
    assert any(f.endswith(".metadata") for f in files)
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'rdzv'}", rank=0, world_size=1)
    try:
        m = make()
        fully_shard(m[1], mesh=init_device_mesh("cpu", (1,)))
        fully_shard(m, mesh=init_device_mesh("cpu", (1,)))
        m.to_empty(device="cpu")
        m[3].weight = m[0].weight
        state = get_model_state_dict(m)
        dcp.load(state, checkpoint_id=str(tmp_path / "ckpt"))
        set_model_state_dict(m, state)
        ref = make()
        gpuinit.init_module(ref, "torch", seed=8, device="cpu")
        assert gpuinit.fingerprint(m) == gpuinit.fingerprint(ref)
        assert torch.equal(m[2].running_var.cpu(), ref[2].running_var)
    finally:
        dist.destroy_process_group()


def test_ranks_share_the_blocks_and_make_the_same_files(tmp_path, monkeypatch):
    """Under torch.distributed each rank writes its consecutive part of the blocks into the files rank 0 laid out:
    run as rank 0 then rank 1 of 2 (the collectives stubbed), the files equal one process's."""
    import torch.distributed as dist

    whole = gpuinit.save_init(mixed(), tmp_path / "one", "torch", seed=3, memory=2048, max_shard_size=60_000)
    monkeypatch.setattr(dist, "is_initialized", lambda: True)
    monkeypatch.setattr(dist, "get_world_size", lambda: 2)
    monkeypatch.setattr(dist, "barrier", lambda: None)
    written = {}
    for rank in (0, 1):
        monkeypatch.setattr(dist, "get_rank", lambda rank=rank: rank)
        files = gpuinit.save_init(mixed(), tmp_path / "two", "torch", seed=3, memory=2048, max_shard_size=60_000)
        written[rank] = [open(f, "rb").read() for f in files if f.endswith(".safetensors")]
    assert written[0] != written[1]  # rank 0 alone left rank 1's blocks unwritten
    assert written[1] == [open(f, "rb").read() for f in whole if f.endswith(".safetensors")]


def test_two_ranks_write_the_files_of_one_process_and_dcp_loads_into_fsdp2(tmp_path):
    """gloo, world size 2, real processes: the safetensors files equal one process's; the DCP checkpoint loads into
    an FSDP2 model sharded over both ranks with init_module's fingerprint."""
    import socket

    import save_worker
    import torch.multiprocessing as mp

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.start_processes(save_worker.run, args=(2, port, str(tmp_path)), nprocs=2, join=True, start_method="spawn")
    alone = gpuinit.save_init(save_worker.meta_model(), tmp_path / "alone", "torch", seed=4, memory=4096,
                              max_shard_size=100_000)
    assert len(alone) > 2
    for f in alone:
        assert open(f, "rb").read() == (tmp_path / "st" / os.path.basename(f)).read_bytes(), f
    ref = save_worker.meta_model()
    gpuinit.init_module(ref, "torch", seed=4, device="cpu")
    assert torch.load(tmp_path / "fp.pt") == gpuinit.fingerprint(ref)
