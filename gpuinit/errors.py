"""Exceptions: every one is raised before anything is written."""


class InitError(ValueError):
    """A parameter, shape or array that an initializer cannot take."""


class ZeroFanError(InitError, ZeroDivisionError):
    """The fan a variance-scaling rule divides by is zero (torch raises ZeroDivisionError here)."""


class UnknownBackendError(InitError):
    """A backend name (``backend=`` or $GPUINIT_BACKEND) that is none of gpuinit's; the message lists them."""


class ConfigError(InitError):
    """A $GPUINIT_* environment variable holds a value gpuinit cannot take; the message names the variable
    and the values it takes."""


class BackendUnavailableError(RuntimeError):
    """The backend asked for cannot run here; the message says what to install."""
