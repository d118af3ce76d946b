"""Rules: ``(name pattern, scheme, params)`` overriding a recipe or the model's own code, checked before anything
is written; which rule fills which parameter or buffer."""
import difflib
import fnmatch

from .. import schemes
from ..errors import InitError, short_repr
from .names import aliases


def check_rules(rules):
    """Rules as (pattern, scheme, params) triples, schemes checked (already-checked rules pass through)."""
    if isinstance(rules, (str, bytes, dict)) or (rules is not None and not hasattr(rules, "__iter__")):
        raise InitError(f"rules must be a list of (name pattern, scheme[, params]) rules, got {short_repr(rules)}")
    out = []
    for rule in rules or ():
        ok = isinstance(rule, (tuple, list)) and len(rule) in (2, 3) and isinstance(rule[0], str)
        if ok and len(rule) == 3 and not isinstance(rule[2], dict):
            raise InitError(f"a rule's params are a dict of the scheme's parameters, e.g. {{'std': 0.02}}; got "
                            f"{short_repr(rule[2])} in rule {short_repr(rule)}")
        if not ok:
            raise InitError("a rule is (name pattern, scheme) or (name pattern, scheme, params dict), got "
                            f"{short_repr(rule)}")
        pattern, scheme, params = (*rule, {}) if len(rule) == 2 else rule
        schemes.resolve(scheme)
        out.append((pattern, scheme, dict(params)))
    return out


def param_rule(names, rules):
    """The (scheme, params) of the first rule that matches any of ``names`` (a parameter's names), or None."""
    if not rules:
        return None
    return next(((scheme, params) for pattern, scheme, params in rules
                 if any(fnmatch.fnmatchcase(n, pattern) for n in names)), None)


def buffer_rule(names, rules):
    """The (scheme, params) of the first rule for a buffer: one whose pattern spells the buffer's own name after
    its last dot (``*.running_mean``, ``rotary.inv_freq``); a wildcard there (``*``, ``*.w*``) means parameters."""
    return param_rule(names, [rule for rule in rules if _spells(rule[0], names[0])])


def _spells(pattern, fqn):
    return pattern.rpartition(".")[2] == fqn.rpartition(".")[2]


def ruled(names, rules, *, buffers=False):
    """[(owner name, (scheme, params))] of the tensors a rule names, under any of their names."""
    if not rules:
        return []
    rule_for = buffer_rule if buffers else param_rule
    return [(fqn, spec) for fqn, names_of in aliases(names).items()
            if (spec := rule_for(names_of, rules)) is not None]


def check_patterns(rules, params, buffers):
    """Every rule pattern must match some parameter name, or a buffer name as buffer_rule reads it."""
    for pattern, *_ in rules:
        if not any(fnmatch.fnmatchcase(n, pattern) for n in params) and not any(
                fnmatch.fnmatchcase(n, pattern) and _spells(pattern, n) for n in buffers):
            names = [*params, *buffers]
            close = difflib.get_close_matches(pattern, names, n=3, cutoff=0.6)
            hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
            raise InitError(f"the rule pattern {short_repr(pattern)} matches no parameter or buffer of the "
                            f"module{hint}")
