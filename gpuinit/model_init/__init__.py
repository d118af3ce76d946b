"""Whole-model init: a torch module, typically built on the meta device, materialized and filled in place.

Two planners over one executor; imports run one way, down this list:

    api.py          init_module (by recipe), own_init (by the model's own code)
    save.py         save_init: the planned values written to checkpoint files block by block (direct_io.py)
    by_recipe.py    init_module's planner: plan_module (PlanEntry per parameter), recipe_plan
    by_own_code.py  own_init's planner: own_plan
    executor.py     fill_model(module, plan, ...): dry run, checks, materialize, the code, the fills
    materialize.py  to_empty / to on a device, probed first, ties kept
    own_code.py     which of the model's own init code runs, and how (parametrizations, Hugging Face, FSDP2)
    deferred.py     gpuinit.deferred(): constructors recorded on meta, replayed as the model's own init code
    intercept.py    the interception layer: the code's fills become gpuinit jobs (Router, OwnInitReport)
    plan.py         Plan and OwnCode: what a planner hands the executor
    buffers.py      how a recipe restores buffers
    recipes.py      what each layer type draws under each recipe
    rules.py        (name pattern, scheme, params) rules
    names.py        tied names, lookups by name
    fingerprint.py  gpuinit.fingerprint: parameters under canonical names, checksummed
"""
from .api import init_module, own_init
from .by_recipe import PlanEntry, plan_module
from .intercept import OwnInitReport
from .recipes import OWN_RECIPES, RECIPES

__all__ = ["OWN_RECIPES", "RECIPES", "OwnInitReport", "PlanEntry", "init_module", "own_init", "plan_module"]
