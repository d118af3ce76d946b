"""own_init: random draws into tensors that are no model tensor (temporaries the code copies from) come from
gpuinit's stream of the module whose code runs, so the seed alone decides the model (issue: Mamba's dt bias,
torchtitan's float32 trunc_normal_ for bf16 weights, Hugging Face's orthogonal_ of a float32 copy)."""
import math

import numpy as np
import pytest
import torch
from torch import nn

import gpuinit
from gpuinit.distributed import stream_of

DT_MIN, DT_MAX = 1e-3, 1e-1


class DtBias(nn.Module):
    """Mamba's dt projection bias: torch.rand into a temporary, transformed, copied into the parameter."""

    def __init__(self, n=37):
        super().__init__()
        self.dt_bias = nn.Parameter(torch.empty(n))

    def reset_parameters(self):
        dt = torch.exp(torch.rand(self.dt_bias.shape[0]) * (math.log(DT_MAX) - math.log(DT_MIN)) + math.log(DT_MIN))
        with torch.no_grad():
            self.dt_bias.copy_(dt + torch.log(-torch.expm1(-dt)))


class FloatCopy(nn.Module):
    """torchtitan's trunc_normal_ of a float32 tensor copied into bf16, and an orthogonal_ of a float32 copy."""

    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.empty(24, 10, dtype=torch.bfloat16))
        self.q = nn.Parameter(torch.empty(16, 16, dtype=torch.bfloat16))

    def reset_parameters(self):
        tmp = torch.empty(self.w.shape, dtype=torch.float32, device=self.w.device)
        nn.init.trunc_normal_(tmp, std=0.02, a=-0.04, b=0.04)
        q = self.q.float()
        nn.init.orthogonal_(q)
        with torch.no_grad():
            self.w.copy_(tmp)
            self.q.copy_(q)


class Model(nn.Module):
    def __init__(self):
        super().__init__()
        self.mixer, self.proj = DtBias(), FloatCopy()


def reference(seed):
    """The model's values written again: each temporary drawn by gpuinit.init_ from the stream of its module's
    name and the draw's number there, then the code's own arithmetic."""
    u = gpuinit.init_(np.empty(37, np.float32), "uniform", a=0.0, b=1.0, seed=seed,
                      stream=stream_of("mixer.<temporary>#0"))
    dt = torch.exp(torch.from_numpy(u) * (math.log(DT_MAX) - math.log(DT_MIN)) + math.log(DT_MIN))
    t = gpuinit.init_(torch.empty(24, 10), "trunc_normal", std=0.02, a=-0.04, b=0.04, seed=seed,
                      stream=stream_of("proj.<temporary>#0"))
    q = gpuinit.init_(torch.empty(16, 16), "orthogonal", seed=seed, stream=stream_of("proj.<temporary>#1"))
    return {"mixer.dt_bias": dt + torch.log(-torch.expm1(-dt)), "proj.w": t.bfloat16(), "proj.q": q.bfloat16()}


def values(m):
    return {k: v.detach().clone() for k, v in m.named_parameters()}


@pytest.mark.parametrize("from_meta", [False, True])
def test_temporaries_are_drawn_from_the_seed_not_torch_s_generator(from_meta):
    got = []
    for torch_seed in (1, 2):
        torch.manual_seed(torch_seed)
        if from_meta:
            with torch.device("meta"):
                m = Model()
            report = gpuinit.own_init(m, seed=7, device="cpu")
        else:
            m = Model()
            report = gpuinit.own_init(m, seed=7)
        got.append(values(m))
        # the dry run on meta draws nothing: each temporary is drawn once
        assert report.served == {"temporary uniform": 1, "temporary trunc_normal": 1, "temporary orthogonal": 1}
    expected = reference(7)
    for name, want in expected.items():
        assert torch.equal(got[0][name], got[1][name]), name
        assert torch.equal(got[0][name], want), name
    q = got[0]["proj.q"].float()
    assert torch.allclose(q @ q.T, torch.eye(16), atol=3e-2)  # bf16 of an orthogonal matrix
    assert got[0]["proj.w"].abs().max() <= 0.04


def test_another_seed_other_temporaries():
    a, b = Model(), Model()
    gpuinit.own_init(a, seed=0)
    gpuinit.own_init(b, seed=1)
    for (name, x), y in zip(values(a).items(), values(b).values(), strict=True):
        assert not torch.equal(x, y), name


def test_a_temporary_drawn_with_the_code_s_generator_is_torch_s():
    class WithGenerator(nn.Module):
        def __init__(self):
            super().__init__()
            self.b = nn.Parameter(torch.empty(9))

        def reset_parameters(self):
            with torch.no_grad():
                self.b.copy_(torch.rand(9, generator=torch.Generator().manual_seed(3)))

    m = WithGenerator()
    report = gpuinit.own_init(m, seed=0)
    assert torch.equal(m.b.detach(), torch.rand(9, generator=torch.Generator().manual_seed(3)))
    assert not report.served


def test_constant_and_integer_temporaries_run_as_written():
    class Plain(nn.Module):
        def __init__(self):
            super().__init__()
            self.b = nn.Parameter(torch.empty(6))

        def reset_parameters(self):
            tmp = torch.empty(6)
            nn.init.constant_(tmp, 0.5)
            steps = torch.randint(0, 4, (6,))  # an integer draw: torch's, as written
            with torch.no_grad():
                self.b.copy_(tmp + steps * 0)

    m = Plain()
    report = gpuinit.own_init(m, seed=0)
    assert m.b.eq(0.5).all() and not report.served
