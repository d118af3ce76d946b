"""docs/architecture.md's layers hold in the code: every module of gpuinit/ and kernels/ is in exactly one
layer, imports only its own layer or the layers below (imports inside functions included, those under
``if TYPE_CHECKING:`` not), no import circle exists, and no private name (a leading underscore) crosses a file."""
import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def layers():
    """[(layer name, [path prefix, ...])] from the first code block of docs/architecture.md, top layer first."""
    block = (ROOT / "docs" / "architecture.md").read_text().split("```")[1]
    out = []
    for line in block.strip().splitlines():
        name, paths = re.match(r"(\S+(?: \S+)?)\s{2,}(.*)", line).groups()
        out.append((name, paths.split()))
    return out


def modules():
    """{dotted name: path} of gpuinit's modules, the kernels as gpuinit.kernels.*."""
    out = {}
    for path in sorted((ROOT / "gpuinit").rglob("*.py")):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    for path in sorted((ROOT / "kernels").glob("*.py")):
        out[f"gpuinit.kernels.{path.stem}"] = path
    return out


def _package(name, path):
    return name if path.name == "__init__.py" else name.rpartition(".")[0]


def _absolute(node, package):
    """The absolute module name an ``ImportFrom`` node reads from."""
    base = node.module or ""
    if node.level:
        up = package.split(".")[: len(package.split(".")) - node.level + 1]
        base = ".".join(up + ([base] if base else []))
    return base


def imports(name, path, known):
    """The gpuinit modules that module ``name`` imports anywhere but under ``if TYPE_CHECKING:``."""
    tree = ast.parse(path.read_text())
    typing_only = {id(n) for block in ast.walk(tree) if isinstance(block, ast.If)
                   and getattr(block.test, "id", getattr(block.test, "attr", None)) == "TYPE_CHECKING"
                   for n in ast.walk(block)}
    package = _package(name, path)
    out = set()
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = _absolute(node, package)
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names]
        else:
            continue
        for target in targets:
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != name:
                out.add(target)
    return out


def layer_of(path, table):
    rel = path.relative_to(ROOT).as_posix()
    hits = [i for i, (_, prefixes) in enumerate(table) for p in prefixes
            if rel == p or (p.endswith("/") and rel.startswith(p))]
    return hits


def test_every_module_is_in_exactly_one_layer():
    table = layers()
    assert [name for name, _ in table][0] == "entry points" and len(table) >= 5
    placed = {name: layer_of(path, table) for name, path in modules().items()}
    assert not [n for n, hits in placed.items() if len(hits) != 1], "modules in no layer or in several"


def test_imports_run_down_the_layers():
    table, mods = layers(), modules()
    level = {name: layer_of(path, table)[0] for name, path in mods.items()}
    upward = [f"{name} ({table[level[name]][0]}) imports {dep} ({table[level[dep]][0]})"
              for name, path in mods.items() for dep in imports(name, path, mods) if level[dep] < level[name]]
    assert not upward, upward


def test_no_import_circle():
    mods = modules()
    graph = {name: imports(name, path, mods) for name, path in mods.items()}
    state, circles = {}, []

    def visit(node, stack):
        state[node] = "open"
        for dep in graph[node]:
            if state.get(dep) == "open":
                circles.append(stack[stack.index(dep):] + [dep])
            elif dep not in state:
                visit(dep, stack + [dep])
        state[node] = "done"

    for name in graph:
        if name not in state:
            visit(name, [name])
    assert not circles, circles


def private_crossings(name, path, known):
    """``from module import _name`` and ``module._name`` reads of another gpuinit module, in module ``name``."""
    tree, package, aliases, out = ast.parse(path.read_text()), _package(name, path), {}, []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (base := _absolute(node, package)).startswith("gpuinit"):
            for a in node.names:
                if f"{base}.{a.name}" in known:
                    aliases[a.asname or a.name] = f"{base}.{a.name}"
                elif a.name.startswith("_") and not a.name.startswith("__"):
                    out.append(f"{name} imports {base}.{a.name}")
    for node in ast.walk(tree):
        if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in aliases
                and node.attr.startswith("_") and not node.attr.startswith("__")):
            out.append(f"{name} reads {aliases[node.value.id]}.{node.attr}")
    return out


def test_no_private_name_crosses_a_file(tmp_path):
    mods = modules()
    crossings = [c for name, path in mods.items() for c in private_crossings(name, path, mods)]
    assert not crossings, crossings
    probe = tmp_path / "probe.py"  # what a crossing looks like, found
    probe.write_text("from .names import _hidden\nfrom . import names\nx = names._other\n")
    assert private_crossings("gpuinit.model_init.probe", probe, mods) == [
        "gpuinit.model_init.probe imports gpuinit.model_init.names._hidden",
        "gpuinit.model_init.probe reads gpuinit.model_init.names._other"]


def test_the_checks_see_an_upward_import(tmp_path):
    """The parser finds imports inside functions and relative ones (what an upward import would look like)."""
    mods = modules()
    found = imports("gpuinit.cli", mods["gpuinit.cli"], mods)
    assert {"gpuinit.model_init", "gpuinit.explore", "gpuinit.api"} <= found
    probe = tmp_path / "probe.py"
    probe.write_text("def f():\n    from ..model_init import executor\n    from . import jobs\n")
    assert imports("gpuinit.backends.probe", probe, mods) == {"gpuinit.model_init.executor", "gpuinit.backends"}
