"""On a CUDA device: tensors past 2**31 elements, zero extra device memory, the current stream.
(The bit-for-bit comparisons of tests/test_triton_backend.py run on the device too when one is present.)"""
import pytest
import torch

import gpuinit

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float32])
def test_more_than_two_to_the_31_elements(dtype):
    n = 2**31 + 4099
    t = torch.empty(n, dtype=dtype, device="cuda")
    gpuinit.init_(t, "normal", seed=7)
    for start in (0, 2**31 - 3, n - 1000):  # the reference values of three slices, from the NumPy backend
        ref = gpuinit.init_(torch.empty(1000, dtype=dtype), "normal", seed=7, full_shape=(n,), offsets=(start,),
                            backend="numpy")
        assert torch.equal(t[start:start + 1000].cpu(), ref)
    del t
    torch.cuda.empty_cache()


@pytest.mark.parametrize("scheme", ["uniform", "normal", "trunc_normal", "kaiming_uniform"])
def test_no_extra_device_memory(scheme):
    t = torch.empty(64 * 2**20, device="cuda")
    gpuinit.init_(t.view(8192, -1), scheme, seed=0)  # compile first
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    before = torch.cuda.memory_allocated()
    gpuinit.init_(t.view(8192, -1), scheme, seed=1)
    torch.cuda.synchronize()
    assert torch.cuda.max_memory_allocated() - before <= 4096  # the launch's 160-byte geometry vector


def test_runs_on_the_current_stream():
    s = torch.cuda.Stream()
    t = torch.empty(2**24, device="cuda")
    with torch.cuda.stream(s):
        gpuinit.init_(t, "normal", seed=3)
        u = t * 1  # ordered after the fill on the same stream
    s.synchronize()
    assert torch.equal(u, t) and t.std().item() > 0.9


def test_orthogonal_bfloat16_on_device():
    w = gpuinit.init_(torch.empty(512, 256, dtype=torch.bfloat16, device="cuda"), "orthogonal", seed=0)
    g = w.float().T @ w.float()
    assert torch.allclose(g, torch.eye(256, device="cuda"), atol=3e-2)
