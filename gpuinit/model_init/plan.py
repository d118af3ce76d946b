"""What a planner hands the executor (gpuinit/model_init/executor.py): every fill of a model, decided and checked
before anything is written. ``init_module`` plans by recipe (by_recipe.py), ``own_init`` by the model's own
code (by_own_code.py); both run through ``fill_model``."""
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

Spec = tuple[str, dict]  # (scheme, params)


@dataclass(frozen=True)
class OwnCode:
    """The model's own init code, run with its fills served by gpuinit (intercept.py).

    ``first``: the code runs before gpuinit's fills of parameters (own_init: a rule's fill replaces the code's),
    else after them and the fixes after them (a recipe's fallback: reset code may read what the recipe wrote);
    ``targets``: the owner names of the tensors whose fills are served; ``skip``: those of them whose fills are
    dropped (a recipe or a rule fills them); ``modules``: the names of the modules whose reset code runs, or None
    for every module's and then the model's own ``init_weights`` (own_code.py); ``unwritten(names, dry)``: the
    error for targets outside ``skip`` that no code wrote (after the dry run on meta, or the run itself), or None
    where they are only reported."""

    first: bool
    targets: tuple[str, ...]
    skip: frozenset[str]
    modules: frozenset[str] | None
    unwritten: Callable[[list[str], bool], str | None]


@dataclass
class Plan:
    """``params`` / ``buffers``: tied()'s name maps; ``fills`` / ``buffer_fills``: (owner name, spec) that gpuinit
    fills, buffers after ``restores`` (callables of the root module that restore
    buffers as their modules define them); ``after_fills``: callables of the root run after the parameters'
    fills (an embedding's padding row zeroed); ``walk``: the planner's walk of the module tree."""

    params: dict[str, str]
    buffers: dict[str, str]
    fills: list[tuple[str, Spec]]
    buffer_fills: list[tuple[str, Spec]] = field(default_factory=list)
    code: OwnCode | None = None
    restores: list[Callable[[Any], None]] = field(default_factory=list)
    after_fills: list[Callable[[Any], None]] = field(default_factory=list)
    walk: Any = None  # the planner's names.Walk of the module, which the executor walks again (None: it walks)
    on_meta: bool | None = None  # whether the planner found the module on meta (None: the executor looks)
