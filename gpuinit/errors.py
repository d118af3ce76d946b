"""Exceptions: every one is raised before anything is written."""
import reprlib


class InitError(ValueError):
    """A parameter, shape or array that an initializer cannot take."""


class ZeroFanError(InitError, ZeroDivisionError):
    """The fan a variance-scaling rule divides by is zero (torch raises ZeroDivisionError here)."""


class UnknownArgumentError(InitError, TypeError):
    """A config names an argument its initializer does not take (a TypeError, as the constructor call raises)."""


class UnknownBackendError(InitError):
    """A backend name (``backend=`` or $GPUINIT_BACKEND) that is none of gpuinit's; the message lists them."""


class ConfigError(InitError):
    """A $GPUINIT_* environment variable holds a value gpuinit cannot take; the message names the variable
    and the values it takes."""


class UnsupportedDrawError(InitError, NotImplementedError):
    """A draw gpuinit does not define for the array's dtype: orthogonal or torch's trunc_normal of a complex array
    (torch raises NotImplementedError there)."""


class BackendUnavailableError(RuntimeError):
    """The backend asked for cannot run here; the message says what to install."""


_SHORT = reprlib.Repr()
_SHORT.maxlevel = 4
_SHORT.maxstring = _SHORT.maxother = 80
_SHORT.maxlong = 40
_SHORT.maxdict = _SHORT.maxlist = _SHORT.maxtuple = _SHORT.maxset = _SHORT.maxfrozenset = _SHORT.maxdeque = 8
REPR_LIMIT = 300


def short_repr(value, limit=REPR_LIMIT):
    """``repr(value)`` for an error message: deep nesting, long containers and long strings elided, at most
    ``limit`` characters, whatever the value (self-referencing, a million items, a ``__repr__`` that raises)."""
    try:
        text = _SHORT.repr(value)
    except Exception:  # an int past str()'s digit limit, a __repr__ that raises or recurses
        text = f"<int of {value.bit_length()} bits>" if isinstance(value, int) else f"<{type(value).__name__} object>"
    return text if len(text) <= limit else text[:limit - 3] + "..."
