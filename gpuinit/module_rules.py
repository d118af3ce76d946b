"""Rules and tied names for init_module: which rule fills which parameter or buffer, and how buffers are restored.

A rule is (name pattern, scheme, params); ``tied`` maps each name of a tensor registered under several names to
its first name.
"""
import difflib
import fnmatch

from . import schemes
from .errors import InitError


def _check_rules(rules):
    """Rules as (pattern, scheme, params) triples, schemes checked (already-checked rules pass through)."""
    if isinstance(rules, (str, bytes, dict)) or (rules is not None and not hasattr(rules, "__iter__")):
        raise InitError(f"rules must be a list of (name pattern, scheme[, params]) rules, got {rules!r}")
    out = []
    for rule in rules or ():
        ok = isinstance(rule, (tuple, list)) and len(rule) in (2, 3) and isinstance(rule[0], str)
        if ok and len(rule) == 3 and not isinstance(rule[2], dict):
            raise InitError(f"a rule's params are a dict of the scheme's parameters, e.g. {{'std': 0.02}}; got "
                            f"{rule[2]!r} in rule {rule!r}")
        if not ok:
            raise InitError(f"a rule is (name pattern, scheme) or (name pattern, scheme, params dict), got {rule!r}")
        pattern, scheme, params = (*rule, {}) if len(rule) == 2 else rule
        schemes.resolve(scheme)
        out.append((pattern, scheme, dict(params)))
    return out


def _rule_for(names, rules):
    """The (scheme, params) of the first rule that matches any of ``names``."""
    return next(((scheme, params) for pattern, scheme, params in rules
                 if any(fnmatch.fnmatchcase(n, pattern) for n in names)), None)


def _buffer_rules(rules, fqn):
    """The rules that may fill buffer ``fqn``: those whose pattern spells the buffer's own name after its
    last dot (``*.running_mean``, ``rotary.inv_freq``); a wildcard there (``*``, ``*.w*``) means parameters."""
    name = fqn.rpartition(".")[2]
    return [rule for rule in rules if rule[0].rpartition(".")[2] == name]


def _check_patterns(rules, params, buffers):
    """Every rule pattern must match some parameter name, or a buffer name as _buffer_rules reads it."""
    for pattern, *_ in rules:
        if not any(fnmatch.fnmatchcase(n, pattern) for n in params) and not any(
                fnmatch.fnmatchcase(n, pattern) and _buffer_rules([(pattern,)], n) for n in buffers):
            names = [*params, *buffers]
            close = difflib.get_close_matches(pattern, names, n=3, cutoff=0.6)
            hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
            raise InitError(f"the rule pattern {pattern!r} matches no parameter or buffer of the module{hint}")


def tied(module, kind="parameters"):
    """{name: owner name} of a module's parameters (or buffers): a tensor registered under several names (tied
    weights) is owned by its first name in ``named_parameters`` order and every name of it maps to that owner."""
    first = {}
    return {fqn: first.setdefault(id(t), fqn)
            for fqn, t in getattr(module, f"named_{kind}")(remove_duplicate=False)}


def _aliases(names):
    """{owner name: [every name of its tensor]} from tied()'s map."""
    out = {}
    for fqn, owner in names.items():
        out.setdefault(owner, []).append(fqn)
    return out


def _plan_buffers(module, rules, names, was_meta):
    """(actions that restore buffers as their module defines them, [(name, (scheme, params))] of the buffers
    a rule fills after them); raises for a buffer of a meta module that nothing restores."""
    actions, ruled, missing, aliases = [], [], [], _aliases(names)
    for mname, m in module.named_modules():
        own = [f"{mname}.{n}" if mname else n for n, _ in m.named_buffers(recurse=False)]
        own = [fqn for fqn in own if names.get(fqn, fqn) == fqn]  # a tied buffer under its first name
        if not own:
            continue
        if hasattr(m, "reset_running_stats"):
            actions.append(lambda root, mname=mname: root.get_submodule(mname).reset_running_stats())
        elif hasattr(m, "reset_buffers"):
            actions.append(lambda root, mname=mname: root.get_submodule(mname).reset_buffers())
        elif hasattr(module, "_init_weights") and not any(True for _ in m.parameters(recurse=False)):
            # a Hugging Face model restores a parameter-free module's buffers (rotary tables) itself
            actions.append(lambda root, mname=mname: root._init_weights(root.get_submodule(mname)))
        else:
            mname = None
        for fqn in own:
            spec = _rule_for(aliases[fqn], _buffer_rules(rules, fqn))
            if spec:
                ruled.append((fqn, spec))
            elif was_meta and mname is None:
                missing.append(fqn)
    if missing:
        raise InitError(f"no way to restore the buffers {', '.join(missing)} after materializing from the meta "
                        "device: give their module a reset_buffers() method, or add a rule naming them (floating-"
                        "point buffers)")
    return actions, ruled
