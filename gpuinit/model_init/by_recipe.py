"""``init_module``'s planner: what each parameter draws by its layer type (recipes.py) and the rules; a parameter
that neither covers is filled by its own module's reset code (the model's own code, served as in own-init).

Each parameter's values come from the stream named by its fully qualified name, so they do not depend on
construction order, on how many parameters exist elsewhere, or on which rank holds which shard.
"""
from functools import partial
from typing import Any, NamedTuple

from ..errors import InitError
from .buffers import plan_buffers
from .names import Walk, aliases, on_meta, tied
from .own_code import has_reset
from .plan import OwnCode, Plan
from .recipes import OWN_RECIPES, RECIPES, layer_kind, layer_spec, n_layers, residual_outputs, zero_padding_row
from .rules import check_patterns, check_rules, param_rule


class PlanEntry(NamedTuple):
    """One parameter of plan_module's plan (unpackable as a 4-tuple)."""

    fqn: str
    tensor: Any
    spec: Any  # (scheme, params), or None when its module's own reset code fills it
    module: Any


def plan_module(module, recipe="torch", rules=None, *, fallback=False, names=None, walk=None):
    """[PlanEntry(fully qualified name, tensor, (scheme, params), owner module)] for every parameter (a tied one once,
    under its first name); raises for any parameter that neither the recipe nor a rule covers, unless
    ``fallback``: then its spec is None (its module's own reset code fills it). ``names``: tied(module), ``walk``:
    names.Walk(module), when the caller has them."""
    if recipe not in RECIPES:
        raise InitError(f"unknown recipe {recipe!r}; recipes: {sorted([*RECIPES, *OWN_RECIPES])}")
    rules = check_rules(rules)
    walk = walk or Walk(module)
    names = tied(module, walk=walk) if names is None else names
    names_of = aliases(names) if rules else {}
    tree = walk.modules()
    ctx = {"root": module, "n_layers": n_layers(module, tree), "residual": residual_outputs(module, tree)}
    asks, owners = {}, {}  # the recipe is asked only for parameters that no rule covers
    for mname, m in tree:
        if not m._parameters:  # containers
            continue
        kind = layer_kind(m)
        for pname, p in m._parameters.items():  # named_parameters(recurse=False); a repeat is no owner below
            fqn = f"{mname}.{pname}" if mname else pname
            if p is not None and names.get(fqn, fqn) == fqn:
                owners[fqn] = (m, p)
                asks.setdefault(fqn, (kind, m, pname, mname))
        if kind == "mha" and m.out_proj.bias is not None:  # MultiheadAttention zeroes its out_proj's bias
            asks[f"{mname}.out_proj.bias" if mname else "out_proj.bias"] = (kind, m, "out_proj.bias", mname)
    plan, missing = [], []
    ask = RECIPES[recipe]
    for fqn, (m, p) in owners.items():
        spec = param_rule(names_of.get(fqn, [fqn]), rules) if rules else None
        if spec is None:
            kind, owner, pname, mname = asks[fqn]
            if kind is not None:
                ctx["module_name"] = mname  # the recipe reads it while asked, never keeps it
                spec = layer_spec(ask, kind, owner, pname, ctx)
        if spec is None and not (fallback and has_reset(m)):
            missing.append(f"{fqn} ({type(m).__name__})")
        plan.append(PlanEntry(fqn, p, spec, m))
    if missing:
        raise InitError(f"recipe {recipe!r} and the rules cover no scheme for: {', '.join(missing)}"
                        f"{' (and their modules have no reset_parameters)' if fallback else ''}; add a rule "
                        "(name pattern, scheme, params) for them, or use recipe 'own'")
    return plan


def recipe_plan(module, recipe, rules):
    """The Plan of ``init_module(module, recipe, rules=rules)``: every check made, nothing written."""
    rules = check_rules(rules)
    walk = Walk(module)
    params, buffers = tied(module, walk=walk), tied(module, "buffers", walk)
    entries = plan_module(module, recipe, rules, fallback=True, names=params, walk=walk)
    check_patterns(rules, params, buffers)
    meta = on_meta(module, walk)
    restores, buffer_fills = plan_buffers(module, rules, buffers, meta, walk.modules())
    by_code = [e.fqn for e in entries if e.spec is None]
    code = None
    if by_code:
        modules = frozenset(fqn.rpartition(".")[0] for fqn in by_code)
        targets = tuple(fqn for fqn, owner in params.items() if owner == fqn and fqn.rpartition(".")[0] in modules)
        code = OwnCode(False, targets, frozenset(targets) - set(by_code), modules, partial(_unwritten, recipe))
    filled = [e for e in entries if e.spec is not None]
    return Plan(params, buffers, [(e.fqn, e.spec) for e in filled], buffer_fills, code, restores,
                [partial(_padding_row, e.module, e.fqn) for e in filled if layer_kind(e.module) == "embedding"
                 and getattr(e.module, "padding_idx", None) is not None], walk, meta)


def _padding_row(m, fqn, root):
    zero_padding_row(m, fqn, getattr(m, fqn.rpartition(".")[2]))  # the module's tensor as it is now


def _unwritten(recipe, names, dry):
    if dry:
        return (f"recipe {recipe!r} and the rules cover no scheme for {', '.join(names)}, and their modules' reset "
                "code does not write them; add a rule (name pattern, scheme, params) for them")
    return f"the reset code of {', '.join(names)} did not write them"
