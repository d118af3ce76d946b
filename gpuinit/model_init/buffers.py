"""How a recipe restores buffers: as their modules define them (``reset_running_stats``, ``reset_buffers``, a
Hugging Face model's ``_init_weights``), or by a rule after that."""
from ..errors import InitError
from .names import aliases, modules
from .rules import buffer_rule


def plan_buffers(module, rules, names, was_meta, tree=None):
    """(actions that restore buffers as their module defines them, [(name, (scheme, params))] of the buffers
    a rule fills after them); raises for a buffer of a meta module that nothing restores. ``tree``:
    names.modules(module), when the caller has it."""
    actions, ruled, missing, names_of = [], [], [], aliases(names)
    for mname, m in modules(module) if tree is None else tree:
        own = [f"{mname}.{n}" if mname else n for n, b in m._buffers.items() if b is not None]
        own = [fqn for fqn in own if names.get(fqn, fqn) == fqn]  # a tied buffer under its first name
        if not own:
            continue
        if hasattr(m, "reset_running_stats"):  # the module itself: materializing keeps the module objects
            actions.append(lambda root, m=m: m.reset_running_stats())
        elif hasattr(m, "reset_buffers"):
            actions.append(lambda root, m=m: m.reset_buffers())
        elif hasattr(module, "_init_weights") and not any(p is not None for p in m._parameters.values()):
            # a Hugging Face model restores a parameter-free module's buffers (rotary tables) itself
            actions.append(lambda root, m=m: root._init_weights(m))
        else:
            mname = None
        for fqn in own:
            spec = buffer_rule(names_of[fqn], rules)
            if spec:
                ruled.append((fqn, spec))
            elif was_meta and mname is None:
                missing.append(fqn)
    if missing:
        raise InitError(f"no way to restore the buffers {', '.join(missing)} after materializing from the meta "
                        "device: give their module a reset_buffers() method, or add a rule naming them (floating-"
                        "point buffers)")
    return actions, ruled
