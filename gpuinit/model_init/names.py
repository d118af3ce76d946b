"""A model's tensors by name: the names a tied tensor goes by, a tensor looked up by name, the meta check.

The walks here give what torch's ``named_modules`` / ``named_parameters`` / ``named_buffers`` give, in their order,
without torch's nested generators (a generator per tree level per module: most of a whole-model call's host time
on a model of thousands of small tensors); a tree in which a module overrides one of those methods is walked by
the methods themselves.

Names are canonical: the wrappers that torch.compile, DDP, DataParallel, FSDP (1) and activation checkpointing put
around a model add a name part (``_orig_mod.``, ``module.``, ``_fsdp_wrapped_module.``,
``_checkpoint_wrapped_module.``) that is no part of the model: the walks leave it out, so a wrapped model has its
unwrapped names (its streams, rules and fingerprint are the same).
"""
import sys

from ..errors import InitError

# (module, class, the attribute holding the wrapped module): wrappers whose child's name is no part of the model's
WRAPPERS = (("torch._dynamo.eval_frame", "OptimizedModule", "_orig_mod"),
            ("torch.nn.parallel.distributed", "DistributedDataParallel", "module"),
            ("torch.nn.parallel.data_parallel", "DataParallel", "module"),
            ("torch.distributed.fsdp.fully_sharded_data_parallel", "FullyShardedDataParallel", "_fsdp_wrapped_module"),
            ("torch.distributed.algorithms._checkpoint.checkpoint_wrapper", "ActivationWrapper",
             "_checkpoint_wrapped_module"))


class _Overridden(Exception):
    """A module of the tree overrides named_modules: the tree is walked by torch's own methods."""


class Walk:
    """One walk of a module tree: ``unique`` is ``list(named_modules())``, ``every`` the same with a shared module
    at each of its places (``remove_duplicate=False``; walked only when a module is shared). Where a module
    overrides ``named_modules`` (or the root ``_named_members``, ``named_parameters``, ``named_buffers``), both
    are None and torch's own methods are asked; ``post`` is ``unique`` in post order (children before their
    parent, in ``_modules`` order), or None with it. The modules of a tree stay while its tensors change
    (materializing, retying), so one walk serves a whole call; the lists of its tensors are kept until
    ``changed()``, which whoever changes them calls. Every name is canonical (``rename``: None where no wrapper
    adds a part, else the function that leaves the parts out of a name as torch gives it)."""

    def __init__(self, module):
        from torch import nn

        self.module, self.every, self.unique, self.post, self.rename = module, None, None, None, None
        self.found = {}  # (kind, remove_duplicate): members' list, until changed()
        self._at = None
        root = type(module)
        if any(getattr(root, f) is not getattr(nn.Module, f)
               for f in ("_named_members", "named_parameters", "named_buffers")):
            self.rename = _renamer(list(module.named_modules(remove_duplicate=False)))
            return
        post = []
        self.unique, repeats = self._walk(True, post)
        if self.unique is not None and not repeats:
            self.every = self.unique  # no module is shared: both walks are one
        self.rename = _renamer(self._walked(False) or list(module.named_modules(remove_duplicate=False)))
        if self.unique is not None and self.rename is not None:
            self.unique, post = _renamed(self.unique, self.rename), _renamed(post, self.rename)
            if self.every is not None:
                self.every = self.unique if not repeats else _renamed(self.every, self.rename)
        self.post = post if self.unique is not None else None

    def _walk(self, remove_duplicate, post=None):
        """(named_modules(remove_duplicate=...) as a list, whether a module was met twice); (None, False) when a
        module overrides named_modules. ``post``: a list that gets the same (name, module) pairs in post order."""
        from torch import nn

        base, out, memo, repeats = nn.Module.named_modules, [], set(), [False]
        append, add, after = out.append, memo.add, (post if post is not None else []).append

        def visit(prefix, m):  # torch's preorder; a module met again is skipped with its subtree when deduplicating
            if type(m).named_modules is not base:
                raise _Overridden
            if m in memo:
                repeats[0] = True
                return
            if remove_duplicate:
                add(m)
            append((prefix, m))
            if prefix:
                for name, child in m._modules.items():
                    if child is not None:
                        visit(f"{prefix}.{name}", child)
            else:
                for name, child in m._modules.items():
                    if child is not None:
                        visit(name, child)
            after((prefix, m))

        try:
            visit("", self.module)
        except _Overridden:
            return None, False
        except RecursionError:  # deeper than Python's stack: torch's own generators (as deep) decide
            return None, False
        return out, repeats[0]

    def _walked(self, remove_duplicate):
        if remove_duplicate or self.unique is None:
            return self.unique
        if self.every is None:  # shared modules: walked again, each place of them
            self.every = self._walk(False)[0]
        return self.every

    def modules(self, remove_duplicate=True):
        """``list(module.named_modules(remove_duplicate=...))``, by canonical names (a wrapper and the module it
        wraps have one name)."""
        walked = self._walked(remove_duplicate)
        if walked is None:
            return _renamed(list(self.module.named_modules(remove_duplicate=remove_duplicate)), self.rename)
        return walked

    def module_at(self, name):
        """The module of canonical name ``name`` (the innermost where a wrapper shares it); KeyError if none."""
        if self._at is None:
            self._at = dict(self.modules(remove_duplicate=False))  # preorder: the wrapped module comes last
        return self._at[name]

    def tensor_at(self, fqn):
        """The parameter or buffer of canonical name ``fqn``."""
        owner, _, name = fqn.rpartition(".")
        return getattr(self.module_at(owner), name)

    def changed(self):
        """The tree's tensors may have changed (materialized, replaced by the model's code): members look again."""
        self.found.clear()

    def members(self, kind="parameters", remove_duplicate=True):
        """``list(module.named_parameters(remove_duplicate=...))`` (``kind="buffers"``: ``named_buffers``), as
        found when first asked for since the walk or its last ``changed()``; the caller does not change it."""
        found = self.found.get((kind, remove_duplicate))
        if found is None:
            found = self.found[(kind, remove_duplicate)] = self._members(kind, remove_duplicate)
        return found

    def _members(self, kind, remove_duplicate):
        walked = self._walked(remove_duplicate)
        if walked is None:
            return _renamed(list(getattr(self.module, f"named_{kind}")(remove_duplicate=remove_duplicate)),
                            self.rename)
        out, table = [], f"_{kind}"
        append = out.append
        if not remove_duplicate:
            for prefix, m in walked:
                for k, v in getattr(m, table).items():
                    if v is not None:
                        append((f"{prefix}.{k}" if prefix else k, v))
            return out
        memo = set()  # by id: a tensor hashes and compares by identity
        for prefix, m in walked:
            for k, v in getattr(m, table).items():
                if v is not None and id(v) not in memo:
                    memo.add(id(v))
                    append((f"{prefix}.{k}" if prefix else k, v))
        return out


def _wrapped_child(cls):
    """The attribute of the module a wrapper of class ``cls`` wraps, or None."""
    found = _WRAPPED.get(cls, _WRAPPED)
    if found is _WRAPPED:
        found = None
        for module, name, attribute in WRAPPERS:
            wrapper = getattr(sys.modules.get(module), name, None)
            if isinstance(wrapper, type) and issubclass(cls, wrapper):
                found = attribute
                break
        _WRAPPED[cls] = found  # a subclass of a wrapper needs its module imported: none later makes one
    return found


_WRAPPED: dict = {}  # module class: _wrapped_child's answer


def _renamer(pairs):
    """The function giving the canonical name of a name as torch gives it in the tree of ``pairs`` (its
    ``named_modules(remove_duplicate=False)``), or None where every name is canonical already (no wrapper, or one
    holding tensors of its own, whose names could then meet its module's)."""
    parts = set()
    for prefix, m in pairs:
        attribute = _wrapped_child(type(m))
        if attribute is None or m._modules.get(attribute) is None:
            continue
        if m._parameters or m._buffers:
            return None
        parts.add(f"{prefix}.{attribute}" if prefix else attribute)
    if not parts:
        return None
    done: dict = {}

    def rename(name):
        out = done.get(name)
        if out is None:
            kept, path = [], ""
            for part in name.split("."):
                path = f"{path}.{part}" if path else part
                if path not in parts:
                    kept.append(part)
            out = done[name] = ".".join(kept)
        return out

    return rename


def _renamed(pairs, rename):
    return pairs if rename is None else [(rename(name), x) for name, x in pairs]


def modules(module, remove_duplicate=True):
    """``list(module.named_modules(remove_duplicate=...))``."""
    return Walk(module).modules(remove_duplicate)


def tied(module, kind="parameters", walk=None):
    """{name: owner name} of a module's parameters (or buffers): a tensor registered under several names (tied
    weights) is owned by its first name in ``named_parameters`` order and every name of it maps to that owner.
    ``walk``: a Walk of ``module``, when the caller has one."""
    first = {}
    return {fqn: first.setdefault(id(t), fqn)
            for fqn, t in (walk or Walk(module)).members(kind, remove_duplicate=False)}


def aliases(names):
    """{owner name: [every name of its tensor]} from tied()'s map."""
    out = {}
    for fqn, owner in names.items():
        out.setdefault(owner, []).append(fqn)
    return out


def owners(names):
    """The owner names of tied()'s map, in order: each tensor once."""
    return [fqn for fqn, owner in names.items() if owner == fqn]


def tensors(module, walk=None):
    """Every parameter, then every buffer, each once (``module.parameters()``, then ``module.buffers()``)."""
    walk = walk or Walk(module)
    return [t for kind in ("parameters", "buffers") for _, t in walk.members(kind)]


def refuse_fake(walk):
    """An InitError naming the first of the module's tensors that is a FakeTensor (no memory: nothing to read or
    write). The tensors' types are looked at, once each: a model has thousands of tensors of two or three types."""
    fake = sys.modules.get("torch._subclasses.fake_tensor")
    if fake is None:
        return
    members = [walk.members(kind) for kind in ("parameters", "buffers")]
    if not any(issubclass(kind, fake.FakeTensor) for kind in {type(t) for part in members for _, t in part}):
        return
    from ..backends.checks import FAKE, is_fake

    for part in members:
        for name, t in part:
            if is_fake(t):
                raise InitError(f"{name}: {FAKE}")


def check_module(module, what):
    """A TypeError, before anything else, unless ``module`` is a torch.nn.Module."""
    nn = sys.modules.get("torch.nn")
    if nn is None or not isinstance(module, nn.Module):
        raise TypeError(f"{what} takes a torch.nn.Module, got {type(module).__name__} (gpuinit.init_ fills one tensor "
                        "or array)")


def on_meta(module, walk=None):
    """Whether any parameter or buffer of ``module`` is on the meta device."""
    walked = (walk or Walk(module)).unique
    if walked is None:
        return any(t.is_meta for t in tensors(module))
    for _, m in walked:
        for t in m._parameters.values():
            if t is not None and t.is_meta:
                return True
        for t in m._buffers.values():
            if t is not None and t.is_meta:
                return True
    return False


def by_name(module, walk=None):
    """{name: tensor} of every parameter and buffer under each of its names."""
    walk = walk or Walk(module)
    return {**dict(walk.members("parameters", remove_duplicate=False)),
            **dict(walk.members("buffers", remove_duplicate=False))}


def tensor_at(module, fqn, walk=None):
    """The parameter or buffer of canonical name ``fqn``."""
    return (walk or Walk(module)).tensor_at(fqn)
