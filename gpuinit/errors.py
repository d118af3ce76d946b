"""Exceptions: every one is raised before anything is written."""


class InitError(ValueError):
    """A parameter, shape or array that an initializer cannot take."""


class ZeroFanError(InitError, ZeroDivisionError):
    """The fan a variance-scaling rule divides by is zero (torch raises ZeroDivisionError here)."""


class BackendUnavailableError(RuntimeError):
    """The backend asked for cannot run here; the message says what to install."""
