"""The model zoo of tests/test_zoo.py (tiny configs, nothing downloaded) and the work of one rank of its
gloo world: each model built on the meta device, FSDP2-sharded, initialized by its own code (own-init) and
fingerprinted, on a mesh of 2 ranks and on a mesh of 1 rank."""
import math
import os

import torch
import torch.distributed as dist
from torch import nn
from torch.nn import functional as F

import gpuinit

SEED = 7
VOCAB = 128


def _hf(cls_name, config_name, **config):
    def build():
        import transformers

        return getattr(transformers, cls_name)(getattr(transformers, config_name)(**config))

    return build


_DECODER = {"vocab_size": VOCAB, "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
            "num_attention_heads": 4, "num_key_value_heads": 2, "max_position_embeddings": 32, "pad_token_id": 5,
            "bos_token_id": 1, "eos_token_id": 2}


class TitanBlock(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.norm = nn.RMSNorm(dim)
        self.w1 = nn.Linear(dim, 2 * dim, bias=False)
        self.w2 = nn.Linear(2 * dim, dim, bias=False)

    def init_weights(self, std):
        nn.init.trunc_normal_(self.w1.weight, mean=0.0, std=0.02, a=-0.04, b=0.04)
        nn.init.trunc_normal_(self.w2.weight, mean=0.0, std=std, a=-2 * std, b=2 * std)

    def forward(self, x):
        return x + self.w2(F.silu(self.w1(self.norm(x))))


class Titan(nn.Module):
    """torchtitan-style: a complex rotary table assigned (not written) by ``init_weights()``, which also
    re-initializes every weight with depth-scaled truncated normals (cut at 2 sigma: a bound to check)."""

    def __init__(self, dim=64, n_layers=2, vocab=VOCAB, seq=32):
        super().__init__()
        self.dim, self.seq = dim, seq
        self.tok_embeddings = nn.Embedding(vocab, dim)
        self.layers = nn.ModuleList(TitanBlock(dim) for _ in range(n_layers))
        self.norm = nn.RMSNorm(dim)
        self.output = nn.Linear(dim, vocab, bias=False)
        self.register_buffer("freqs_cis", self._freqs(), persistent=False)

    def _freqs(self):
        inv = 1.0 / 10000 ** (torch.arange(0, self.dim, 2).float() / self.dim)
        return torch.polar(torch.ones(self.seq, self.dim // 2), torch.outer(torch.arange(self.seq).float(), inv))

    def init_weights(self, buffer_device=None):
        with torch.device(buffer_device or self.freqs_cis.device):
            self.freqs_cis = self._freqs()
        nn.init.normal_(self.tok_embeddings.weight)
        for k, layer in enumerate(self.layers):
            layer.init_weights(0.02 / math.sqrt(2 * (k + 1)))
        self.norm.reset_parameters()
        std = self.dim ** -0.5
        nn.init.trunc_normal_(self.output.weight, mean=0.0, std=std, a=-2 * std, b=2 * std)

    def forward(self, tokens):
        x = self.tok_embeddings(tokens)
        x = x + self.freqs_cis[: tokens.shape[1]].real.repeat(1, 2)
        for layer in self.layers:
            x = layer(x)
        return self.output(self.norm(x))


def _encoder_layer():
    return nn.TransformerEncoderLayer(64, 4, 128, batch_first=True, norm_first=True)  # pre-norm: output scale shows


def _weight_norm_conv():
    return nn.utils.parametrizations.weight_norm(nn.Conv1d(16, 32, 5))


# name: (builder, init_module recipe, input kind of the loss at init)
ZOO = {
    "gpt2": (_hf("GPT2LMHeadModel", "GPT2Config", vocab_size=VOCAB, n_positions=32, n_embd=64, n_layer=2, n_head=4,
                 bos_token_id=1, eos_token_id=2), "hf", "lm"),
    "bert": (_hf("BertForMaskedLM", "BertConfig", vocab_size=VOCAB, hidden_size=64, num_hidden_layers=2,
                 num_attention_heads=4, intermediate_size=128, max_position_embeddings=32, pad_token_id=0), "hf", "lm"),
    "t5": (_hf("T5ForConditionalGeneration", "T5Config", vocab_size=VOCAB, d_model=64, d_kv=16, d_ff=128, num_layers=2,
               num_heads=4, decoder_start_token_id=0, pad_token_id=0, eos_token_id=1), "hf", "seq2seq"),
    "llama_tied": (_hf("LlamaForCausalLM", "LlamaConfig", **_DECODER, tie_word_embeddings=True), "hf", "lm"),
    "llama_untied": (_hf("LlamaForCausalLM", "LlamaConfig", **_DECODER, tie_word_embeddings=False), "hf", "lm"),
    "mixtral": (_hf("MixtralForCausalLM", "MixtralConfig", **{**_DECODER, "intermediate_size": 96},
                    num_local_experts=4, num_experts_per_tok=2), "hf", "lm"),
    "qwen2_moe": (_hf("Qwen2MoeForCausalLM", "Qwen2MoeConfig", **_DECODER, moe_intermediate_size=32,
                      shared_expert_intermediate_size=64, num_experts=4, num_experts_per_tok=2), "hf", "lm"),
    "vit": (_hf("ViTForImageClassification", "ViTConfig", image_size=32, patch_size=8, hidden_size=64,
                num_hidden_layers=2, num_attention_heads=4, intermediate_size=128, num_labels=10), "hf", "image"),
    "resnet": (_hf("ResNetForImageClassification", "ResNetConfig", embedding_size=16, hidden_sizes=[16, 32],
                   depths=[1, 1], layer_type="basic", num_labels=10), "hf", "image"),
    "wav2vec2": (_hf("Wav2Vec2ForCTC", "Wav2Vec2Config", vocab_size=32, hidden_size=64, num_hidden_layers=2,
                     num_attention_heads=4, intermediate_size=128, conv_dim=(32, 32), conv_stride=(5, 2),
                     conv_kernel=(10, 3), num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=4,
                     pad_token_id=0), "hf", "speech"),
    "transformer_encoder": (lambda: nn.TransformerEncoder(_encoder_layer(), 2, enable_nested_tensor=False),
                            "own", "seq"),
    "lstm": (lambda: nn.LSTM(32, 64, num_layers=2, batch_first=True), "own", "rnn"),
    "gru": (lambda: nn.GRU(32, 64, num_layers=2, batch_first=True, bidirectional=True), "own", "rnn"),
    "weight_norm_conv": (_weight_norm_conv, "own", "conv"),
    "titan": (Titan, "own", "titan"),
}


def reference(name):
    """The model as its library initializes it: constructed on the CPU (torchtitan-style: then init_weights())."""
    model = ZOO[name][0]()
    if name == "titan":
        model.init_weights()
    return model


def encoder_with_independent_layers():
    """nn.TransformerEncoder deep-copies one constructed layer, so its layers start identical; own-init runs each
    layer's init code, which draws each from its own stream: this reference draws each layer by torch's own init."""
    model = ZOO["transformer_encoder"][0]()
    for k in range(len(model.layers)):
        model.layers[k] = _encoder_layer()
    return model


def build_meta(name):
    with torch.device("meta"):
        return ZOO[name][0]()


def own_initialized(name, seed=SEED):
    """The model built on the meta device, then initialized by its own code with gpuinit serving the fills."""
    return gpuinit.init_module(build_meta(name), ZOO[name][1], seed=seed, device="cpu")


def fsdp_units(model):
    """The modules to shard one by one before the root: the items of each outermost ModuleList."""
    units, inside = [], set()
    for _, m in model.named_modules():
        if isinstance(m, nn.ModuleList) and id(m) not in inside:
            units.extend(m)
            inside.update(id(x) for x in m.modules())
    return units


def run(rank, world, port, out_dir):
    """Every model sharded on all ``world`` ranks, and each rank in turn a model on a mesh of its own (size 1);
    {(name, mesh size): fingerprint, or the error} saved to rank<r>.pt (written whole, then renamed)."""
    from datetime import timedelta

    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard

    torch.set_num_threads(1)  # two ranks on a small machine, beside the other tests
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world, timeout=timedelta(seconds=120))
    mesh = init_device_mesh("cpu", (world, 1), mesh_dim_names=("shard", "alone"))
    results = {}
    for k, name in enumerate(ZOO):
        for size, sub in ((world, mesh["shard"]), (1, mesh["alone"])):
            if size == 1 and k % world != rank:
                continue
            error = None
            try:
                model = build_meta(name)
                for unit in fsdp_units(model):
                    fully_shard(unit, mesh=sub)
                fully_shard(model, mesh=sub)
                gpuinit.init_module(model, ZOO[name][1], seed=SEED, device="cpu")
            except Exception as e:  # noqa: BLE001 - reported by the test, per model
                error = f"{type(e).__name__}: {e}"
            ok = torch.tensor([error is None], dtype=torch.int32)
            dist.all_reduce(ok, op=dist.ReduceOp.MIN, group=sub.get_group())  # collectives where all got there
            results[(name, size)] = gpuinit.fingerprint(model) if ok.item() else error or "failed on another rank"
    path = os.path.join(out_dir, f"rank{rank}.pt")
    torch.save(results, path + ".tmp")
    os.replace(path + ".tmp", path)
    dist.destroy_process_group()
