"""gpuinit explore: every figure has its data, the statistics are exact and finite, two runs write the same data,
and report.md names every figure and quotes numbers that are in the data."""
import csv
import json
import math
import re
import time

import pytest

pytest.importorskip("matplotlib")
torch = pytest.importorskip("torch")

from gpuinit import explore  # noqa: E402
from gpuinit.explore import nets  # noqa: E402

FLOOR_FLAGS = ("at_floor", "act_at_floor", "grad_at_floor")
OLD_CLIPS = (1e-30, 1e-12)  # the silent clipping values of earlier versions


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    outs = [tmp_path_factory.mktemp(f"explore{i}") for i in range(2)]
    messages = []
    threads, det = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    t0 = time.perf_counter()
    res = explore.run(outs[0], quick=True, progress=messages.append, formats=("png", "svg", "pdf"))
    seconds = time.perf_counter() - t0
    restored = (torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()) == (threads, det)
    explore.run(outs[1], quick=True, progress=lambda m: None, draw=False)  # the same data, no figures
    return {"out": outs[0], "again": outs[1], "res": res, "seconds": seconds, "messages": messages,
            "restored": restored}


def _csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _numbers(obj):
    if isinstance(obj, bool):
        return
    if isinstance(obj, (int, float)):
        yield float(obj)
    elif isinstance(obj, dict):
        for v in obj.values():
            yield from _numbers(v)
    elif isinstance(obj, list):
        for v in obj:
            yield from _numbers(v)


def _cell_numbers(rows):
    for row in rows:
        for v in row.values():
            try:
                yield float(v)
            except ValueError:
                pass


def test_every_png_has_its_data(runs):
    out = runs["out"]
    assert sorted(p.stem for p in out.glob("*.png")) == sorted(explore.FIGURES)
    for name in explore.FIGURES:
        png = out / f"{name}.png"
        assert png.stat().st_size > 10_000 and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        rows = _csv(out / f"{name}.csv")
        meta = json.loads((out / f"{name}.json").read_text())
        assert rows and meta["figure"] == f"{name}.png" and meta["data_file"] == f"{name}.csv"
        assert meta["network"] and meta["data"] and meta["claim"] and meta["settings"]


def test_data_is_finite_and_no_value_sits_at_an_unmarked_floor(runs):
    out = runs["out"]
    for name in explore.FIGURES:
        rows = _csv(out / f"{name}.csv")
        for row in rows:
            floored = any(row.get(k) == "1" for k in FLOOR_FLAGS)
            for key, v in row.items():
                if v == "":
                    assert floored, (name, key, row)  # only a floored statistic has no log10
                    continue
                try:
                    x = float(v)
                except ValueError:
                    continue
                assert math.isfinite(x), (name, key, row)
                assert x not in OLD_CLIPS, (name, key, row)
                if x <= 0 and re.search(r"(rms|std)", key) and "log10" not in key:
                    assert floored, (name, key, row)  # an exact zero must be flagged as the floor
        meta = json.loads((out / f"{name}.json").read_text())
        assert all(math.isfinite(x) for x in _numbers(meta)), name


def test_float32_underflow_case_is_exact(runs):
    """Small-uniform ReLU: float32 autograd loses the gradient RMS to underflow; the written values are finite
    and equal a float64 autograd recomputation."""
    depth, batch = explore.sizes(True)["depth"], explore.sizes(True)["batch"]
    ws, label = nets.alternating(depth), "small uniform ±0.01"

    def autograd_rms(dtype):
        w = [wl.to(dtype).requires_grad_() for wl in nets.weights(label, ws, 0)]
        x, up = (t.to(dtype) for t in nets.inputs(ws, batch, 0))
        h, zs = x, []
        for wl in w:
            z = h @ wl.T
            z.retain_grad()
            zs.append(z)
            h = torch.relu(z)
        (h * up).sum().backward()
        return [float(z.grad.pow(2).mean().sqrt()) for z in zs]

    f32, f64 = autograd_rms(torch.float32), autograd_rms(torch.float64)
    assert sum(v == 0.0 for v in f32) >= 5  # the case is known to underflow in float32
    assert all(v > 0 and math.isfinite(v) for v in f64)
    written = [r for r in _csv(runs["out"] / "signal.csv") if r["activation"] == "relu" and r["init"] == label]
    assert len(written) == depth
    for r, ref in zip(written, f64, strict=True):
        assert r["grad_at_floor"] == "0"
        assert abs(float(r["log10_grad_rms"]) - math.log10(ref)) < 1e-9, (r["layer"], r["log10_grad_rms"], ref)
    assert min(float(r["grad_rms"]) for r in written) < 1e-30  # far below where float32 squares underflow


def test_log_domain_backward_survives_float64_underflow():
    """A gradient that float64 itself cannot hold (sigmoid, U(-0.001, 0.001), 256 layers: the forward signal stays
    near 1/2, the gradient shrinks past 1e-324) stays finite in the log domain."""
    ws = nets.alternating(256, wide=16, narrow=16)
    st = nets.deep_stats("sigmoid", ("uniform", {"a": -1e-3, "b": 1e-3}), ws, batch=8)
    assert all(v is not None and math.isfinite(v) for v in st["grad_rms"])
    assert st["grad_rms"][0] < -330  # log10: below float64's smallest subnormal


def test_two_runs_write_identical_data(runs):
    for name in explore.FIGURES:
        for ext in ("csv", "json"):
            a = (runs["out"] / f"{name}.{ext}").read_bytes()
            assert a == (runs["again"] / f"{name}.{ext}").read_bytes(), f"{name}.{ext}"
    assert (runs["out"] / "report.md").read_text() == (runs["again"] / "report.md").read_text()


def test_report_names_every_figure_and_quotes_the_data(runs):
    out = runs["out"]
    report = (out / "report.md").read_text()
    known = set()
    for name in explore.FIGURES:
        assert f"({name}.png)" in report and f"({name}.csv)" in report
        meta = json.loads((out / f"{name}.json").read_text())
        assert meta["network"] in report and meta["data"] in report
        known.update(f"{x:.3g}" for x in _numbers(meta))
        known.update(f"{x:.3g}" for x in _cell_numbers(_csv(out / f"{name}.csv")))
    quoted = re.findall(r"(?<![§\w.])(\d+\.\d+(?:e[+-]\d+)?|\d+e[+-]\d+)", report)
    assert len(quoted) > 40
    missing = [q for q in quoted if q not in known]
    assert not missing, missing
    assert "same network" not in report


def test_progress_threads_and_runtime(runs):
    assert len(runs["messages"]) >= len(explore.FIGURES) and all("explore:" in m for m in runs["messages"])
    assert runs["restored"]
    assert runs["seconds"] < 60


def test_the_tutorials_claims_hold(runs):
    r = runs["res"]
    sym = r["symmetry"]
    w = sym["w1"]["constant 0.5"]
    assert (w - w[0]).abs().max() < 1e-6  # every hidden unit still has the first one's weights
    s = sym["summary"]
    assert s["constant_spread_max"] < 1e-6 and s["glorot_spread_last"] > 0.1
    assert s["constant_loss_last"] > s["glorot_loss_last"] + 0.05
    assert r["trials"]["summary"]["same start"]["std"] < 1e-6
    assert r["trials"]["summary"]["Glorot"]["std"] > 1e-3
    sig = r["signal"]["summary"]
    assert sig["relu_he_act_std_max"] / sig["relu_he_act_std_min"] < 10
    assert sig["relu_small_act_std_last"] < 1e-30 and sig["relu_large_act_std_last"] > 1e15
    der = r["derivations"]["summary"]
    assert der["linear_max_ratio"] < 1.5 and der["glorot_pair_factor"] == pytest.approx(0.64)
    cur = r["curves"]["summary"]
    assert cur["ranking"][-1] == "small uniform ±0.01"
    other = r["other_forms"]["summary"]
    assert other["orthogonal_sv_dev_from_1"] < 1e-9 and other["Glorot_sv_below_resolution"] > 0


def test_cli_shows_progress_on_stderr(monkeypatch, capsys, tmp_path):
    from gpuinit import cli

    calls = []

    def fake_run(out, quick=False, progress=None, **figures):
        progress("explore: [1/7] symmetry (0.1 s)")
        calls.append(figures)

    monkeypatch.setattr(explore, "run", fake_run)
    assert cli.main(["explore", "--out", str(tmp_path), "--quick"]) == 0
    cap = capsys.readouterr()
    assert "explore: [1/7] symmetry" in cap.err and "wrote" in cap.out
    assert cli.main(["explore", "--out", str(tmp_path), "--format", "svg", "pdf", "svg", "--dpi", "300"]) == 0
    assert calls == [{"formats": ("png",), "dpi": 200}, {"formats": ("svg", "pdf"), "dpi": 300}]


def test_adam_is_torch_optim_adam():
    """explore's written-out Adam gives torch.optim.Adam's values bit for bit (odd shapes, several steps)."""
    from gpuinit.explore.train import adam

    g = torch.Generator().manual_seed(7)
    ours = [torch.randn(3, 5, generator=g), torch.randn(7, generator=g), torch.randn(2, 1, 3, generator=g)]
    ref = [p.clone().requires_grad_() for p in ours]
    ours = [p.requires_grad_() for p in ours]
    step, opt = adam(ours, lr=0.01), torch.optim.Adam(ref, lr=0.01)
    for _ in range(25):
        for params in (ours, ref):
            sum((p.sin() * (k + 1)).sum() for k, p in enumerate(params)).backward()
        step()
        opt.step()
        opt.zero_grad()
        assert all(torch.equal(a, b) for a, b in zip(ours, ref, strict=True))
        assert all(p.grad is None for p in ours)


def test_log_tick_labels_are_plain_text():
    from gpuinit.explore.plots import plain_log_label

    assert plain_log_label(r"$\mathdefault{10^{-32}}$") == "10⁻³²"
    assert plain_log_label(r"$\mathdefault{10^{0}}$") == "10⁰"
    assert plain_log_label(r"$\mathdefault{2\times10^{-1}}$") == "2×10⁻¹"
    assert plain_log_label(r"$\mathdefault{1.5\times10^{12}}$") == "1.5×10¹²"
    assert plain_log_label("") == "" and plain_log_label(r"$\mathdefault{0.5}$") == r"$\mathdefault{0.5}$"


def test_drawing_and_setup_stay_light(tmp_path):
    """The drawing process never loads torch (it draws from the rows), and neither the deterministic section nor
    explore's Adam loads torch._dynamo / torch._inductor (seconds of import): checked in a fresh interpreter."""
    import subprocess
    import sys

    code = """
import sys
import gpuinit.explore, gpuinit.explore.plots
assert "torch" not in sys.modules, "explore or its plots import torch"
import torch
from gpuinit.explore.train import adam
with gpuinit.explore.deterministic():
    assert torch.are_deterministic_algorithms_enabled() and torch.get_num_threads() == 1
    p = torch.ones(3, requires_grad=True)
    p.sum().backward()
    adam([p], 0.1)()
heavy = [m for m in ("torch._dynamo", "torch._inductor") if m in sys.modules]
assert not heavy, heavy
assert not torch.are_deterministic_algorithms_enabled()
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 0, done.stderr


def test_activation_std_is_each_units_std_over_the_inputs():
    """h_std: each unit's std over the batch, RMS over units (not the spread of the units' fixed offsets),
    recomputed here directly; where a sigmoid's variation is below float64's resolution it is flagged and holds
    the bound 64 eps RMS(h)."""
    ws = nets.alternating(12, wide=48, narrow=24)
    for act, label, f in (("tanh", "Glorot", torch.tanh), ("sigmoid", "small uniform ±0.01", torch.sigmoid)):
        st = nets.deep_stats(act, label, ws, batch=40)
        h, _ = nets.inputs(ws, 40, 0)
        eps = torch.finfo(torch.float64).eps
        for i, w in enumerate(nets.weights(label, ws, 0)):
            h = f(h @ w.T)
            direct = h.std(0, unbiased=False).pow(2).mean().sqrt().item()
            bound = 64 * eps * h.pow(2).mean().sqrt().item()
            assert st["h_below_res"][i] == (direct < bound), (act, i)
            expect = bound if direct < bound else direct
            assert 10 ** st["h_std"][i] == pytest.approx(expect, rel=1e-9), (act, i)
        if act == "sigmoid":
            assert st["h_below_res"][-1] and not st["h_below_res"][0]  # the signal dies under rounding
        else:
            assert not any(st["h_below_res"])


def test_signal_and_derivation_claims(runs):
    sig = runs["res"]["signal"]["summary"]
    # He's ReLU and leaky forms scale the same draws: the ratio is (1 + a^2)^(L/2), exactly
    assert sig["leaky_he_over_heleaky_last"] == pytest.approx(sig["leaky_he_over_heleaky_theory"], rel=1e-6)
    assert sig["sigmoid_small_resolution_layer"] > 1 and sig["below_resolution_rows"] > 0
    der = runs["res"]["derivations"]["summary"]
    assert der["sigmoid_max_ratio"] > 10 * der["relu_max_ratio"]  # the logistic derivation leaves out the mean
    report = (runs["out"] / "report.md").read_text()
    assert "Schemes (gpuinit names):* Glorot = xavier_normal" in report
    from gpuinit.explore.report import ranking_text

    b = {"a": {"final_min": 1, "final_max": 2}, "b": {"final_min": 1.5, "final_max": 3},
         "c": {"final_min": 4, "final_max": 5}}
    assert ranking_text(b, ["a", "b", "c"]).startswith("a = b < c")
