"""gpuinit/errors.py: the exception classes, their bases (what a caller catching ValueError, ZeroDivisionError or
RuntimeError gets), the names gpuinit exports, and the class each kind of mistake raises."""
import numpy as np
import pytest

import gpuinit
from gpuinit import errors


@pytest.mark.parametrize("cls,bases", [
    (errors.InitError, (ValueError,)),
    (errors.ZeroFanError, (errors.InitError, ValueError, ZeroDivisionError)),
    (errors.UnknownBackendError, (errors.InitError, ValueError)),
    (errors.ConfigError, (errors.InitError, ValueError)),
    (errors.BackendUnavailableError, (RuntimeError,)),
])
def test_bases(cls, bases):
    assert all(issubclass(cls, b) for b in bases)
    assert cls.__doc__


def test_unavailable_is_not_a_value_error():
    """A backend that cannot run here is the environment's fault, not the caller's argument."""
    assert not issubclass(errors.BackendUnavailableError, ValueError)
    assert not issubclass(errors.UnknownBackendError, RuntimeError)
    assert not issubclass(errors.ConfigError, errors.UnknownBackendError)


def test_exported():
    for name in ("InitError", "ZeroFanError", "UnknownBackendError", "ConfigError", "BackendUnavailableError"):
        assert getattr(gpuinit, name) is getattr(errors, name) and name in gpuinit.__all__


def test_each_mistake_raises_its_class(monkeypatch):
    def fill(**kw):
        return gpuinit.init_(np.empty((3, 4), np.float32), "xavier_normal", seed=0, **kw)

    with pytest.raises(errors.UnknownBackendError):
        fill(backend="nope")
    monkeypatch.setenv("GPUINIT_NUM_THREADS", "many")
    with pytest.raises(errors.ConfigError):
        fill()
    monkeypatch.delenv("GPUINIT_NUM_THREADS")
    with pytest.raises(errors.ZeroFanError):
        gpuinit.init_(np.empty((0, 0), np.float32), "xavier_normal", seed=0)
    with pytest.raises(errors.InitError) as e:
        fill(gain=-1.0, extra=1)
    assert type(e.value) is errors.InitError
