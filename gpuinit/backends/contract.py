"""The backend contract, in code: what a backend module provides, checked when it is loaded."""
from typing import Any, Protocol, runtime_checkable


@runtime_checkable
class Backend(Protocol):
    """A module that fills arrays of some types in place from the gpuinit stream.

    ``NAME``: its name in the registry. ``INSTALL``: what to install when it cannot run. ``available()``: None
    when it can run here, else why not. ``accepts(array)``: whether it fills this array. ``check(array,
    bits=None)``: raises before any write when it cannot fill it. ``fill(job)``: writes one ``gpuinit.jobs.Job``
    (its array: the block at ``job.offsets`` of a ``job.full_shape`` tensor, with ``job.draw``, ``job.seed``,
    ``job.stream`` and ``job.bits``) and returns the array. ``fill_group(jobs)``: writes many jobs at once (as few
    launches as it can), skipping arrays with nothing to write. Both write only what ``prepare`` checked.
    """

    NAME: str
    INSTALL: str

    def available(self) -> str | None: ...

    def accepts(self, array: Any) -> bool: ...

    def check(self, array: Any, bits: str | None = None) -> None: ...

    def fill(self, job: Any) -> Any: ...

    def fill_group(self, jobs: list) -> Any: ...


MEMBERS = ("NAME", "INSTALL", "available", "accepts", "check", "fill", "fill_group")


def validate(module, name):
    """``module`` if it meets the contract under registry name ``name``, else TypeError naming what is missing."""
    missing = [m for m in MEMBERS if not hasattr(module, m)]
    wrong = [m for m in MEMBERS[2:] if m not in missing and not callable(getattr(module, m))]
    if missing or wrong or getattr(module, "NAME", name) != name:
        raise TypeError(f"backend module {module.__name__} breaks the backend contract "
                        f"(gpuinit/backends/contract.py): missing {missing}, not callable {wrong}, "
                        f"NAME {getattr(module, 'NAME', None)!r} for registry name {name!r}")
    return module
