"""A model's tensors by name: the names a tied tensor goes by, a tensor looked up by name, the meta check."""


def tied(module, kind="parameters"):
    """{name: owner name} of a module's parameters (or buffers): a tensor registered under several names (tied
    weights) is owned by its first name in ``named_parameters`` order and every name of it maps to that owner."""
    first = {}
    return {fqn: first.setdefault(id(t), fqn)
            for fqn, t in getattr(module, f"named_{kind}")(remove_duplicate=False)}


def aliases(names):
    """{owner name: [every name of its tensor]} from tied()'s map."""
    out = {}
    for fqn, owner in names.items():
        out.setdefault(owner, []).append(fqn)
    return out


def owners(names):
    """The owner names of tied()'s map, in order: each tensor once."""
    return [fqn for fqn, owner in names.items() if owner == fqn]


def tensors(module):
    yield from module.parameters()
    yield from module.buffers()


def on_meta(module):
    return any(t.is_meta for t in tensors(module))


def by_name(module):
    """{name: tensor} of every parameter and buffer under each of its names, in one walk of the module tree."""
    return {**dict(module.named_parameters(remove_duplicate=False)),
            **dict(module.named_buffers(remove_duplicate=False))}


def tensor_at(module, fqn):
    owner, _, name = fqn.rpartition(".")
    return getattr(module.get_submodule(owner) if owner else module, name)
