"""gpuinit/errors.py: the exception classes, their bases (what a caller catching ValueError, ZeroDivisionError or
RuntimeError gets), the names gpuinit exports, the class each kind of mistake raises, and the values that messages
quote, abbreviated."""
import numpy as np
import pytest

import gpuinit
from gpuinit import errors


@pytest.mark.parametrize("cls,bases", [
    (errors.InitError, (ValueError,)),
    (errors.ZeroFanError, (errors.InitError, ValueError, ZeroDivisionError)),
    (errors.UnknownArgumentError, (errors.InitError, ValueError, TypeError)),
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


def test_short_repr_keeps_small_values_and_caps_the_rest():
    for value in (3, "fan_in", [1, 2], {"class_name": "SeedGenerator", "config": {"seed": "x"}}, None, 1.5):
        assert errors.short_repr(value) == repr(value)
    deep = [1]
    for _ in range(10**5):
        deep = [deep]
    loop = {}
    loop["a"] = loop

    class Raises:
        def __repr__(self):
            raise RuntimeError("no repr")

    class Recurses:
        def __repr__(self):
            return repr(self)

    for value in (list(range(10**6)), "x" * 10**6, deep, loop, Raises(), Recurses(), {i: [i] * 99 for i in range(99)},
                  np.arange(10**6)):
        assert len(errors.short_repr(value)) <= errors.REPR_LIMIT
    assert errors.short_repr(10**5000) == "<int of 16610 bits>"  # past str()'s digit limit
    assert errors.short_repr(list(range(10**6)), limit=20) == "[0, 1, 2, 3, 4, 5..."


def test_messages_abbreviate_the_values_they_quote():
    """A mistaken argument of a million items gives a message of a line, not megabytes."""
    def message(**kw):
        with pytest.raises(errors.InitError) as e:
            gpuinit.init_(np.empty((3, 4), np.float32), seed=0, **kw)
        return str(e.value)

    huge = list(range(10**6))
    for kw in ({"scheme": "variance_scaling", "mode": huge}, {"scheme": "variance_scaling", "distribution": huge},
               {"scheme": "x" * 10**6}, {"scheme": "normal", **{f"p{i}" * 100: 1 for i in range(100)}},
               {"scheme": "normal", "in_axis": (huge,)}):
        assert len(message(**kw)) < 2 * errors.REPR_LIMIT + 200, next(iter(kw.values()))
