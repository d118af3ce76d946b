"""The tutorial's experiments with tiny models, as figures, their data and a report (``gpuinit explore --out DIR``).

Each figure ``NAME.png`` (or .svg, .pdf: ``formats``) comes with ``NAME.csv`` (its data, one row per plotted
point) and ``NAME.json`` (the claim, network, data, settings and the summary numbers report.md quotes), so that
users can replot.

- symmetry: units that start equal stay equal (tutorial section 3.1).
- trials: networks that start equal end equal (section 3.2).
- scale: too small and too large a uniform range both hurt sigmoid and tanh nets (section 4).
- signal: activation and gradient through 32 layers, by activation and scheme (sections 4-5).
- derivations: Xavier-Bengio's and He's per-layer variance predictions beside the measured ones (section 5).
- other_forms: orthogonal, identity and sparse starts (section 6).
- curves: training speed and final loss by initializer, over several seeds (sections 1 and 7).

This module runs them and writes the files. ``deep`` (signal, derivations, scale, other forms) and ``train``
(symmetry, trials, curves) hold the experiments, on ``nets`` (the deep nets' exact statistics); ``report`` makes
the captions, summaries and report.md and ``plots`` the figures, without torch (they are drawn in a second process).

Results are identical run to run: data and weights are seeded, and the experiments run with one torch thread
and deterministic algorithms (both restored afterwards). The library never prints: progress goes to
``progress`` (a callable taking a message) or else to the "gpuinit" logger at INFO.
"""
import contextlib
import csv
import importlib.util
import json
import logging
import multiprocessing
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

FIGURES = ["symmetry", "trials", "scale", "signal", "derivations", "other_forms", "curves"]
LOG = logging.getLogger("gpuinit")


@contextlib.contextmanager
def deterministic(threads=1):
    """Run the body with ``threads`` torch threads and deterministic algorithms; restore both afterwards."""
    import torch

    old = (torch.get_num_threads(), torch.are_deterministic_algorithms_enabled(),
           torch.is_deterministic_algorithms_warn_only_enabled())
    torch.set_num_threads(threads)
    _set_deterministic(torch, True, False)
    try:
        yield
    finally:
        torch.set_num_threads(old[0])
        _set_deterministic(torch, *old[1:])


def _set_deterministic(torch, mode, warn_only):
    """``torch.use_deterministic_algorithms``, without its import of torch._inductor (about 2.5 s of start-up)
    when inductor is not loaded: the experiments compile nothing, so only the eager flag matters."""
    setter = getattr(torch._C, "_set_deterministic_algorithms", None)
    if "torch._inductor.config" in sys.modules or setter is None:
        torch.use_deterministic_algorithms(mode, warn_only=warn_only)
    else:
        setter(mode, warn_only=warn_only)


def sizes(quick):
    """The experiments' sizes: the full run and the ``quick`` one (same networks, fewer steps, seeds and samples).
    ``batch``: inputs of the signal and other-forms nets; ``wide_batch``: of the scale and derivations nets."""
    if quick:
        return {"sym_steps": 150, "trials": 8, "trial_steps": 100, "depth": 32, "batch": 16, "wide_batch": 32,
                "n_r": 9, "der_seeds": 3, "curve_steps": 120, "seeds": 3}
    return {"sym_steps": 300, "trials": 24, "trial_steps": 200, "depth": 32, "batch": 64, "wide_batch": 64,
            "n_r": 13, "der_seeds": 5, "curve_steps": 300, "seeds": 5}


def experiments(quick=False, progress=None, on_done=None):
    """Run every experiment; return {name: {"rows", "settings", ...}}. ``on_done(name, result)`` is called as
    each one finishes (outside the deterministic section)."""
    from . import deep, train

    say = progress or LOG.info
    n = sizes(quick)
    steps = [("symmetry", lambda: train.symmetry(steps=n["sym_steps"])),
             ("trials", lambda: train.trials(n_trials=n["trials"], steps=n["trial_steps"])),
             ("scale", lambda: deep.scale(depth=16, batch=n["wide_batch"], n_r=n["n_r"])),
             ("signal", lambda: deep.signal(depth=n["depth"], batch=n["batch"])),
             ("derivations", lambda: deep.derivations(depth=n["depth"], batch=n["wide_batch"], seeds=n["der_seeds"])),
             ("other_forms", lambda: deep.other_forms(depth=32, width=128, batch=n["batch"])),
             ("curves", lambda: train.curves(steps=n["curve_steps"], seeds=n["seeds"]))]
    res = {}
    for k, (name, fn) in enumerate(steps, 1):
        t0 = time.perf_counter()
        with deterministic():
            res[name] = fn()
        say(f"explore: [{k}/{len(steps)}] {name} ({time.perf_counter() - t0:.1f} s)")
        if on_done:
            on_done(name, res[name])
    return res


def run(out_dir, quick=False, progress=None, draw=True, formats=("png",), dpi=None):
    """Run the experiments and write NAME.csv, NAME.json and a figure NAME.png (and / or .svg, .pdf: ``formats``;
    a PNG at ``dpi``, default ``plots.DPI``) for each figure and ``report.md`` into ``out_dir``; return the
    results (see ``experiments``), each with its "meta" (what NAME.json holds; its figure: the first format's).
    Figures are drawn in a second process while the experiments go on; ``draw=False`` writes the data and the
    report but no figure (the data are the same)."""
    from . import plots
    from . import report as rep

    if draw and importlib.util.find_spec("matplotlib") is None:  # fails early, before the experiments
        raise RuntimeError(plots.NO_MATPLOTLIB)
    say = progress or LOG.info
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    meta, drawn = {}, {}
    pool = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) if draw else None
    if pool:  # the drawing process loads matplotlib and its fonts while this one loads torch
        drawn["(start)"] = pool.submit(plots.warm)

    def save(name, r):
        r["summary"] = rep.summarize(name, r)
        meta[name] = r["meta"] = {"figure": f"{name}.{formats[0]}", "data_file": f"{name}.csv", **rep.CAPTIONS[name](r),
                                  "settings": r["settings"], "summary": r["summary"]}
        write_csv(out / f"{name}.csv", r["rows"])
        extra = {"per_run": r["per_run"]} if "per_run" in r else {}
        (out / f"{name}.json").write_text(json.dumps({**meta[name], **extra}, indent=1, ensure_ascii=False) + "\n")
        if pool:
            portable = {k: v for k, v in r.items() if k != "w1"}
            if "w1" in r:
                portable["w1"] = {k: v.numpy() for k, v in r["w1"].items()}
            drawn[name] = pool.submit(plots.draw, name, portable, meta[name], str(out / name), formats,
                                      dpi or plots.DPI)

    try:
        res = experiments(quick, progress, on_done=save)
        t0 = time.perf_counter()
        for future in drawn.values():
            future.result()
        if pool:
            say(f"explore: drew {len(meta)} figures (waited {time.perf_counter() - t0:.1f} s for the last ones)")
    finally:
        if pool:
            pool.shutdown(cancel_futures=True)
    (out / "report.md").write_text(rep.report(res, meta))
    drawn_as = f" and {', '.join(f.upper() for f in formats)} figures" if draw else ""
    say(f"explore: wrote {len(meta)} figures' data{drawn_as} and report.md to {out}")
    return res


def write_csv(path, rows):
    keys = list(dict.fromkeys(k for r in rows for k in r))
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, keys, restval="", lineterminator="\n")
        w.writeheader()
        w.writerows({k: (repr(v) if isinstance(v, float) else v) for k, v in r.items()} for r in rows)
