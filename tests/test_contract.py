"""gpuinit/backends/contract.py: every backend module of the registry meets the Backend Protocol, with the
signatures its docstring gives; a module that breaks it is refused, naming what is wrong."""
import importlib
import inspect
import sys
import types

import pytest

from gpuinit.backends import _ALL
from gpuinit.backends.contract import MEMBERS, Backend, validate

# The call each member must take, as the Protocol writes it (positional names; defaults where it has them).
SIGNATURES = {"available": ([], {}), "accepts": (["array"], {}), "check": (["array", "bits"], {"bits": None}),
              "fill": (["job"], {}), "fill_group": (["jobs"], {})}


def module_of(name):
    return importlib.import_module(_ALL[name])


def complete(name="fake"):
    m = types.ModuleType(f"fake_{name}")
    m.NAME, m.INSTALL = name, "nothing"
    m.available = lambda: None
    m.accepts = lambda array: False
    m.check = lambda array, bits=None: None
    m.fill = lambda job: job
    m.fill_group = lambda jobs: len(jobs)
    return m


def test_members_are_the_protocols():
    declared = {n for n in vars(Backend) if not n.startswith("_")} | set(Backend.__annotations__)
    assert set(MEMBERS) == declared


@pytest.mark.parametrize("name", sorted(_ALL))
def test_every_backend_meets_the_contract(name):
    module = module_of(name)
    assert validate(module, name) is module
    assert isinstance(module, Backend)
    assert module.NAME == name and isinstance(module.INSTALL, str) and module.INSTALL


@pytest.mark.parametrize("name", sorted(_ALL))
@pytest.mark.parametrize("member", sorted(SIGNATURES))
def test_every_backend_takes_the_protocols_arguments(name, member):
    params = list(inspect.signature(getattr(module_of(name), member)).parameters.values())
    names, defaults = SIGNATURES[member]
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    assert [p.name for p in positional[:len(names)]] == names, params
    assert all(p.default is not p.empty for p in positional[len(names):]), params  # nothing more is required
    for arg, default in defaults.items():
        assert next(p for p in params if p.name == arg).default == default


@pytest.mark.parametrize("name", sorted(_ALL))
def test_available_says_none_or_why(name):
    why = module_of(name).available()
    assert why is None or (isinstance(why, str) and why)


def test_a_complete_module_passes():
    m = complete()
    assert validate(m, "fake") is m and isinstance(m, Backend)


@pytest.mark.parametrize("missing", MEMBERS)
def test_a_missing_member_is_named(missing):
    m = complete()
    delattr(m, missing)
    with pytest.raises(TypeError, match=rf"fake_fake breaks the backend contract .*missing \['{missing}'\]"):
        validate(m, "fake")
    assert not isinstance(m, Backend)


@pytest.mark.parametrize("member", MEMBERS[2:])
def test_a_member_that_is_not_callable_is_named(member):
    m = complete()
    setattr(m, member, 3)
    with pytest.raises(TypeError, match=rf"missing \[\], not callable \['{member}'\]"):
        validate(m, "fake")


def test_name_must_be_the_registry_name():
    with pytest.raises(TypeError, match="NAME 'fake' for registry name 'other'"):
        validate(complete(), "other")


def test_the_registry_validates_what_it_loads(monkeypatch):
    """backends.load refuses a registered module that breaks the contract, before asking it anything."""
    from gpuinit import backends

    broken = complete("numpy")
    del broken.fill_group
    broken.available = lambda: pytest.fail("asked before validation")
    monkeypatch.setitem(sys.modules, "fake_numpy_module", broken)
    monkeypatch.setitem(backends._ALL, "numpy", "fake_numpy_module")
    monkeypatch.setattr(backends, "_VALID", {})  # a module is validated when it is first imported
    with pytest.raises(TypeError, match="fill_group"):
        backends.load("numpy")
