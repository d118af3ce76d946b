"""gpuinit save (gpuinit/cli_save.py): an initialized checkpoint from a Hugging Face config.json, the built-in Llama
of a size or an importable factory, loadable as what init_module gives."""
import json

import pytest
import torch
from safetensors.torch import load_file

import gpuinit
from gpuinit import cli, models


def test_from_a_hugging_face_config(tmp_path, capsys):
    transformers = pytest.importorskip("transformers")
    config = transformers.LlamaConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                                      num_attention_heads=4, num_key_value_heads=2, vocab_size=500)
    config.save_pretrained(tmp_path / "cfg")
    assert cli.main(["save", "--config", str(tmp_path / "cfg" / "config.json"), "--out", str(tmp_path / "out"),
                     "--dtype", "bfloat16", "--seed", "3"]) == 0
    assert "recipe hf, seed 3" in capsys.readouterr().out
    loaded = transformers.AutoModelForCausalLM.from_pretrained(tmp_path / "out", dtype=torch.bfloat16)
    with torch.device("meta"):
        ref = transformers.AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
    gpuinit.init_module(ref, "hf", seed=3, device="cpu")
    assert gpuinit.fingerprint(loaded) == gpuinit.fingerprint(ref)


def test_the_built_in_llama_in_shards(tmp_path):
    assert cli.main(["save", "--params", "20M", "--out", str(tmp_path), "--max-shard-size", "30MB",
                     "--memory", "1MiB"]) == 0
    index = json.loads((tmp_path / "model.safetensors.index.json").read_text())
    got = {}
    for f in set(index["weight_map"].values()):
        got.update(load_file(tmp_path / f))
    with torch.device("meta"):
        ref = models.Llama(models.LlamaConfig.with_params(20_000_000))
    gpuinit.init_module(ref, "torch", seed=0, device="cpu")
    want = {k: v for k, v in ref.state_dict().items() if k in dict(ref.named_parameters())}
    assert sorted(got) == sorted(want) and all(torch.equal(got[k], want[k]) for k in want)


def test_from_a_factory(tmp_path, monkeypatch):
    (tmp_path / "my_models.py").write_text("import torch\n\ndef small():\n    return torch.nn.Linear(8, 3)\n")
    monkeypatch.chdir(tmp_path)
    assert cli.main(["save", "--factory", "my_models:small", "--out", "ckpt", "--format", "dcp"]) == 0
    assert (tmp_path / "ckpt" / ".metadata").is_file()


@pytest.mark.parametrize("argv,match", [(["--factory", "nosuch_module_x:f"], "No module named"),
                                        (["--factory", "nocolon"], "module:function"),
                                        (["--config", "/nonexistent/config.json"], "no config.json")])
def test_bad_input_is_one_line(tmp_path, capsys, argv, match):
    assert cli.main(["save", *argv, "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert match in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "o").exists()
