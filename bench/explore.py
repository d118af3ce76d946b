"""Wall time of ``gpuinit explore`` (full and ``--quick``), each run a fresh ``python -m gpuinit explore``
process, on an idle machine and with ``--busy N`` processes spinning on the CPU beside it (a busy machine).

``--tree DIR`` (several allowed) times the gpuinit source tree DIR instead of the installed one, so that two
versions run interleaved in one call: tree 1 quick, tree 1 full, tree 2 quick, ..., ``--repeat`` rounds.
Prints a table of medians; ``--out DIR`` also writes DIR/explore-time.json with every run.

    python bench/explore.py --repeat 3
    python bench/explore.py --tree /tmp/before --tree . --busy 2 --out bench/results/explore-compare
"""
import argparse
import json
import multiprocessing
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from gpuinit_bench.console import print_table, progress

from gpuinit import cli_checks as checks


def _spin():
    while True:
        pass


def one_run(tree, quick):
    """Seconds for one ``python -m gpuinit explore`` in a fresh process (``tree``: the source tree, or None)."""
    env = dict(os.environ)
    if tree:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(Path(tree).resolve()), env.get("PYTHONPATH")]))
    with tempfile.TemporaryDirectory() as out:
        cmd = [sys.executable, "-m", "gpuinit", "explore", "--out", out] + (["--quick"] if quick else [])
        t0 = time.perf_counter()
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=out)
        seconds = time.perf_counter() - t0
        if done.returncode or len(list(Path(out).glob("*.png"))) != 7:
            raise SystemExit(f"{' '.join(cmd)} failed:\n{done.stdout}{done.stderr}")
    return seconds


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tree", action="append", default=None, help="a gpuinit source tree to time (repeatable)")
    p.add_argument("--repeat", type=checks.positive_int, default=3)
    p.add_argument("--busy", type=checks.int_range(0, 64), default=0, help="spinning processes beside each run")
    p.add_argument("--out", type=checks.out_path, default=None)
    a = p.parse_args(argv)
    trees = a.tree or [None]
    for tree in filter(None, trees):
        if not (Path(tree) / "gpuinit" / "__init__.py").is_file():
            p.error(f"--tree {tree}: no gpuinit package there")
    spinners = [multiprocessing.Process(target=_spin, daemon=True) for _ in range(a.busy)]
    for s in spinners:
        s.start()
    runs, last = [], ""
    try:
        with progress(a.repeat * len(trees) * 2, "explore bench") as step:
            for r in range(a.repeat):
                for tree in trees:
                    for quick in (True, False):
                        step(f"round {r + 1}, {tree or 'installed'} {'quick' if quick else 'full'}{last}")
                        sec = one_run(tree, quick)
                        runs.append({"tree": tree or "installed", "mode": "quick" if quick else "full", "round": r,
                                     "seconds": sec})
                        last = f"; the previous run took {sec:.2f} s"
    finally:
        for s in spinners:
            s.kill()
    table = {}
    for tree in trees:
        name = tree or "installed"
        table[name] = {m: statistics.median(x["seconds"] for x in runs if x["tree"] == name and x["mode"] == m)
                       for m in ("quick", "full")}
    print_table(("tree", "full s", "quick s", "quick / full"),
                [(name, f"{med['full']:.2f}", f"{med['quick']:.2f}", f"{med['quick'] / med['full']:.2f}")
                 for name, med in table.items()], right=("full s", "quick s", "quick / full"),
                title=f"gpuinit explore wall time, median of {a.repeat} (busy processes beside it: {a.busy}, "
                      f"{os.cpu_count()} CPUs)")
    if a.out:
        Path(a.out).mkdir(parents=True, exist_ok=True)
        doc = {"busy": a.busy, "repeat": a.repeat, "cpus": os.cpu_count(), "python": platform.python_version(),
               "medians": table, "runs": runs}
        (Path(a.out) / "explore-time.json").write_text(json.dumps(doc, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
