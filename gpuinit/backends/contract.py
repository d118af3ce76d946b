"""The backend contract, in code: what a backend module provides, checked when it is loaded."""
from typing import Any, Protocol, runtime_checkable


@runtime_checkable
class Backend(Protocol):
    """A module that fills arrays of some types in place from the gpuinit stream.

    ``NAME``: its name in the registry. ``INSTALL``: what to install when it cannot run. ``available()``: None
    when it can run here, else why not. ``accepts(array)``: whether it fills this array. ``check(array,
    bits=None)``: raises before any write when it cannot fill it. ``fill(array, draw, full_shape, offsets, seed,
    stream, bits=None)``: one array (a block at ``offsets`` of a ``full_shape`` tensor). ``fill_group(items)``:
    many arrays at once, items ``(array, draw, seed, stream, full_shape, offsets)``.
    """

    NAME: str
    INSTALL: str

    def available(self) -> str | None: ...

    def accepts(self, array: Any) -> bool: ...

    def check(self, array: Any, bits: str | None = None) -> None: ...

    def fill(self, array: Any, draw: Any, full_shape: tuple, offsets: tuple, seed: int, stream: int,
             bits: str | None = None) -> Any: ...

    def fill_group(self, items: list) -> Any: ...


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
