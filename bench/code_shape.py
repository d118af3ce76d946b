"""The code's shape, for a checkout at ROOT: modules and lines per folder, import circles (imports inside
functions included, those under ``if TYPE_CHECKING:`` not), and the calls between gpuinit's modules while
``init_module`` (recipe torch) and ``own_init`` fill a small meta-built transformer: distinct (caller function ->
callee function) edges across modules, entries per module, and the climbs back up (a call into a module that
imports the caller's module, directly or not).

    python bench/code_shape.py ROOT > shape.json
"""
import ast
import json
import sys
from collections import Counter, defaultdict
from pathlib import Path

ROOT = Path(sys.argv[1]).resolve()


def modules():
    out = {}
    for p in sorted((ROOT / "gpuinit").rglob("*.py")):
        rel = p.relative_to(ROOT).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = p
    for p in sorted((ROOT / "kernels").glob("*.py")):
        out["gpuinit.kernels." + p.stem] = p
    return out


def imports(mods):
    graph = defaultdict(set)
    for name, path in mods.items():
        pkg = name if path.name == "__init__.py" else name.rpartition(".")[0]
        tree = ast.parse(path.read_text())
        typing_only = {id(n) for block in ast.walk(tree) if isinstance(block, ast.If)
                       and getattr(block.test, "id", getattr(block.test, "attr", "")) == "TYPE_CHECKING"
                       for n in ast.walk(block)}
        for node in ast.walk(tree):
            if id(node) in typing_only:
                continue
            targets = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    up = pkg.split(".")
                    up = up[: len(up) - node.level + 1]
                    base = ".".join(up + ([base] if base else []))
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in mods else base for a in node.names]
            for t in targets:
                while t and t not in mods:
                    t = t.rpartition(".")[0]
                if t and t != name and t in mods:
                    graph[name].add(t)
    return graph


def cycles(graph, nodes):
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def strong(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for v in nodes:
        if v not in index:
            strong(v)
    return out


def reach(graph, a):
    seen, todo = set(), [a]
    while todo:
        for w in graph.get(todo.pop(), ()):
            if w not in seen:
                seen.add(w)
                todo.append(w)
    return seen


def trace(fn, mods):
    """Calls between gpuinit modules during fn(): (entries per module, [(caller, callee)])."""
    by_file = {str(p): n for n, p in mods.items()}
    calls = []

    def prof(frame, event, arg):
        if event != "call":
            return
        callee = by_file.get(frame.f_code.co_filename)
        back = frame.f_back
        while back is not None and by_file.get(back.f_code.co_filename) is None and callee is not None:
            back = back.f_back  # through torch's or the model's own frames
        caller = by_file.get(back.f_code.co_filename) if back is not None else None
        if callee and caller and callee != caller:
            calls.append((caller, back.f_code.co_name, callee, frame.f_code.co_name))

    sys.setprofile(prof)
    try:
        fn()
    finally:
        sys.setprofile(None)
    return calls


def main():
    mods = modules()
    graph = imports(mods)
    folders = Counter()
    lines = Counter()
    for path in mods.values():
        folder = str(path.parent.relative_to(ROOT))
        folders[folder] += 1
        lines[folder] += len(path.read_text().splitlines())
    sys.path.insert(0, str(ROOT))
    import torch

    import gpuinit

    torch.manual_seed(0)

    def model():
        from torch import nn

        with torch.device("meta"):
            layer = nn.TransformerEncoderLayer(64, 4, 128, batch_first=True)
            return nn.Sequential(nn.Embedding(100, 64), nn.TransformerEncoder(layer, 2, enable_nested_tensor=False),
                                 nn.LayerNorm(64), nn.Linear(64, 100))

    result = {"folders": {f: {"modules": folders[f], "lines": lines[f]} for f in sorted(folders)},
              "import_circles": cycles(graph, list(mods)), "calls": {}}
    for label, fn in (("init_module", lambda: gpuinit.init_module(model(), "torch", seed=0, device="cpu")),
                      ("own_init", lambda: gpuinit.own_init(model(), seed=0, device="cpu"))):
        fn()  # imports done outside the trace
        edges = sorted(set(trace(fn, mods)))  # distinct (caller function -> callee function) across modules
        upward = [e for e in edges if e[0] in reach(graph, e[2])]  # the callee's module imports the caller's
        result["calls"][label] = {
            "call_edges": len(edges), "module_entries": dict(Counter(e[2] for e in edges).most_common()),
            "climbs_back_up": len(upward), "climbs": [f"{a}.{f} -> {b}.{g}" for a, f, b, g in upward]}
    print(json.dumps(result, indent=1))


main()
