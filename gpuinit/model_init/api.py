"""The entry points of whole-model init: ``init_module`` (by recipe) and ``own_init`` (by the model's own code),
each a planner (by_recipe.py, by_own_code.py) over the one executor (executor.py)."""
from .. import backends, seeding
from ..errors import InitError
from .by_own_code import own_plan
from .by_recipe import recipe_plan
from .executor import collector_paused, fill_model
from .names import check_module
from .recipes import OWN_RECIPES


def init_module(module, recipe="torch", *, seed=None, device=None, rules=None, progress=None, backend=None):
    """Materialize ``module`` (``to_empty`` on ``device`` when it is on the meta device) and fill every
    parameter and buffer in place; return it.

    Args:
        recipe: "torch" (each layer's default ``reset_parameters`` distribution), "gpt2" (normal 0.02,
            residual output projections scaled by 1/sqrt(2 * layers), zero biases, unit norms),
            "xavier", "he", "lecun" (weights by the scheme, biases zero), "own" (the module's own init code:
            every ``reset_parameters()``, then its ``init_weights()``, each fill served by gpuinit:
            gpuinit.own_init), "hf" (the same, for a Hugging Face model: its ``_init_weights``).
        seed: 64-bit, or a torch / NumPy generator or SeedSequence (gpuinit.seeding.resolve_seed: without one,
            gpuinit.manual_seed's source, else torch's global generator); a parameter's values are a function
            of (seed, its fully qualified name, index).
        device: where a meta module is materialized (default: CUDA when available, else CPU).
        rules: ordered ``(name pattern, scheme, params)`` overriding the recipe (``fnmatch`` patterns on
            fully qualified names of parameters and buffers), e.g. ``("*.wo.weight", "normal", {"std": 0.002})``.
            A rule fills a buffer only when its pattern spells the buffer's name after the last dot
            (``*.running_mean``): wildcards there match parameters. A pattern that matches nothing is an error.
        progress: a progress bar: True, False, or None (shown when a CPU fill is large and stderr is a tty).
        backend: the backend of every fill (gpuinit.backends.names()); default: by each tensor's type.

    Tied parameters (one tensor under several names) are filled once, from the stream of their first name
    in ``named_parameters`` order, and stay tied after materialization.
    Buffers that are not parameters are restored as the module defines them: ``reset_running_stats()``
    (batch norm), ``reset_buffers()`` (e.g. rotary caches), a Hugging Face model's ``_init_weights`` for
    its parameter-free modules (rotary embeddings), or a rule; a buffer of a meta module that none of
    these covers is an error.
    A parameter that neither the recipe nor a rule covers is filled by its module's own reset code
    (``reset_parameters()``), its fills served by gpuinit, after the recipe's and the rules' fills.
    Parameters are DTensors under FSDP2 / tensor parallelism: each rank fills its local shard.
    Every rule, parameter and buffer is checked before anything is written or materialized.
    """
    check_module(module, "init_module")
    with backends.using(backend), collector_paused():
        if recipe in OWN_RECIPES:
            if recipe == "hf" and not (callable(getattr(module, "_init_weights", None)) and hasattr(module, "config")):
                raise InitError("recipe 'hf' runs a Hugging Face model's own _init_weights, and this module has "
                                "none (no config and _init_weights); recipe 'own' runs any module's own init code")
            own_init(module, seed=seed, device=device, rules=rules)
            return module
        seed = seeding.resolve_seed(seed, module)
        fill_model(module, recipe_plan(module, recipe, rules), seed=seed, device=device, progress=progress)
        return module


def own_init(module, *, seed=None, device=None, rules=None):
    """Initialize ``module`` in place by its own code on gpuinit's stream; return an ``OwnInitReport``.

    The code that runs, in this order: each module's ``reset_parameters()`` (or ``_reset_parameters()``) and
    ``reset_buffers()`` (buffers its constructor computes), children before their parent as construction runs
    them, then the model's own ``init_weights()`` (a Hugging Face model's ``_init_weights`` on every module, a
    torchtitan-style model's ``init_weights()``). A meta model is first run dry on the meta device, which checks
    every fill and finds the tensors no code writes, before anything is materialized.

    ``device``: where a meta module is materialized (default: CUDA when available, else CPU), or where a
    materialized one is moved. ``rules``: ``(name pattern, scheme, params)`` as in ``init_module``; a tensor a
    rule names is filled by the rule after the code ran (the code's fills of it are dropped). On a meta
    module every parameter and buffer must be written by the code or named by a rule.
    """
    check_module(module, "own_init")
    seed = seeding.resolve_seed(seed, module)
    with collector_paused():
        return fill_model(module, own_plan(module, rules), seed=seed, device=device, progress=False)
