import os

import numpy as np
import pytest
import torch

# Without a GPU the Triton kernels run in Triton's interpreter, on torch CPU tensors. This must be
# decided before triton is imported (its @jit reads it at import).
if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")


@pytest.fixture
def rng(request):
    """A fresh generator per test; its seed is printed on failure so a run can be replayed."""
    seed = int(np.random.SeedSequence().entropy % 2**32)
    request.node.user_properties.append(("rng_seed", seed))
    return np.random.default_rng(seed)


def fresh_seed(rng):
    return int(rng.integers(0, 2**64, dtype=np.uint64))


@pytest.fixture(autouse=True)
def _gpuinit_unseeded():
    """No test inherits another's gpuinit.manual_seed: it would override torch.manual_seed for unseeded calls."""
    import gpuinit

    gpuinit.manual_seed(None)
    gpuinit.jobs.forget()  # nor another's checked calls, which a test's patch of a backend would not renew
    yield
    gpuinit.manual_seed(None)
