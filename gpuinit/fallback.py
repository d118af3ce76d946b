"""The recipes' fallback: parameters that no recipe entry and no rule covers are filled by their own module's
``reset_parameters()`` (or ``_reset_parameters()``), its fills served by gpuinit as in own-init mode."""
from . import modules
from .own import Router, _mode, _Patched
from .own_model import _post_order, _reset


def has_reset(module, fqn):
    owner = module.get_submodule(fqn.rpartition(".")[0])
    return any(callable(getattr(owner, n, None)) for n in ("reset_parameters", "_reset_parameters"))


def reset_fallback(module, fqns, *, seed, dry=False):
    """Run the reset code of the modules that own parameters ``fqns``; the other parameters of those modules
    (the recipe fills them) are left alone. Returns the names in ``fqns`` that no code wrote. ``dry``: check
    only (for meta modules: nothing is written)."""
    import torch

    owners = {fqn.rpartition(".")[0] for fqn in fqns}
    names = modules.tied(module)
    targets = [(fqn, modules._param(module, fqn)) for fqn, owner in names.items()
               if owner == fqn and fqn.rpartition(".")[0] in owners]
    router = Router(targets, seed=seed, skip={fqn for fqn, _ in targets if fqn not in fqns}, dry=dry)
    with torch.no_grad(), _Patched(router), _mode(router):
        for prefix, m in _post_order(module):
            if prefix[:-1] in owners:
                _reset(m, prefix, router)
    router.flush()
    return [fqn for fqn in fqns if fqn not in router.touched]
