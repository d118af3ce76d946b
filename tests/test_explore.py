"""gpuinit explore: the figures exist and show what the tutorial claims."""
import numpy as np
import pytest

pytest.importorskip("matplotlib")

from gpuinit import explore


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    out = tmp_path_factory.mktemp("explore")
    return out, explore.run(out, quick=True)


def test_figures_and_report(results):
    out, _ = results
    report = (out / "report.md").read_text()
    for name in ("symmetry", "signal", "curves", "trials"):
        png = out / f"{name}.png"
        assert png.stat().st_size > 10_000 and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert f"({name}.png)" in report


def test_symmetric_units_stay_identical(results):
    _, r = results
    sym = r["symmetry"]
    w = sym["constant 0.5"]["w1"]
    assert (w - w[0]).abs().max() < 1e-6  # every hidden unit still has the first one's weights
    assert max(sym["constant 0.5"]["spread"]) < 1e-6 and sym["Glorot"]["spread"][-1] > 0.1
    assert sym["constant 0.5"]["loss"][-1] > sym["Glorot"]["loss"][-1] + 0.05  # the symmetric run stalls


def test_he_keeps_relu_signal_small_uniform_collapses_it(results):
    _, r = results
    he, small = r["signal"][("relu", "He")]["act"], r["signal"][("relu", "small uniform")]["act"]
    assert max(he) / min(he) < 2.0
    assert small[-1] / small[0] < 1e-6
    large = r["signal"][("relu", "large uniform")]["act"]
    assert large[-1] / large[0] > 1e6  # and a large one makes it explode


def test_trials_need_different_starts(results):
    _, r = results
    assert np.std(r["trials"]["same start"]) < 1e-6
    for label in ("Glorot", "LeCun", "He"):
        assert np.std(r["trials"][label]) > 1e-3, label
