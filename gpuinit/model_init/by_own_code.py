"""``own_init``'s planner: the model's own init code decides every fill (each module's ``reset_parameters()``,
then its ``init_weights()``: own_code.py), served by gpuinit; a rule's tensor is filled by the rule after the code
ran (the code's fills of it are dropped). On a meta module every parameter and buffer must be written by the
code or named by a rule, which the dry run on meta checks before anything is materialized."""
from .names import Walk, on_meta, owners, tied
from .plan import OwnCode, Plan
from .rules import check_patterns, check_rules, ruled


def own_plan(module, rules):
    """The Plan of ``own_init(module, rules=rules)``: every check made, nothing written."""
    rules = check_rules(rules)
    walk = Walk(module)
    params, buffers = tied(module, walk=walk), tied(module, "buffers", walk)
    check_patterns(rules, params, buffers)
    fills, buffer_fills = ruled(params, rules), ruled(buffers, rules, buffers=True)
    skip = frozenset(fqn for fqn, _ in fills + buffer_fills)
    code = OwnCode(True, (*owners(params), *owners(buffers)), skip, None, _unwritten)
    return Plan(params, buffers, fills, buffer_fills, code, walk=walk, on_meta=on_meta(module, walk))


def _unwritten(names, dry):
    if not dry:
        return None  # a materialized model's untouched tensors are reported (OwnInitReport.untouched)
    return (f"own init: no init code writes {', '.join(names)} (set in the constructor, which does not run on a "
            "meta model); build the model within gpuinit.deferred() to have its constructor's init run, or add a "
            "rule naming them (a model built within deferred() whose constructor leaves them as made: its recorded "
            "calls stand for the reset code of the modules it built and for the model's init_weights)")
