"""gpuinit explore's figures: each format written and valid, PNGs at their resolution, legends at 10 pt beside the
panels, and every curve of the data visible in its figure (none hidden under another), with --quick's data."""
import csv
import re
import xml.etree.ElementTree as ET

import numpy as np
import pytest

pytest.importorskip("matplotlib")
torch = pytest.importorskip("torch")

from gpuinit import explore  # noqa: E402
from gpuinit.explore import plots  # noqa: E402

SERIES = {"symmetry": ("start",), "scale": ("activation",), "signal": ("init",), "other_forms": ("init",),
          "curves": ("init",), "derivations": ()}  # the CSV's column that names a figure's curves (trials: points)


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    out = tmp_path_factory.mktemp("figures")
    res = explore.run(out, quick=True, progress=lambda m: None, formats=("png", "svg", "pdf"), dpi=120)
    return out, res


def figures(quick):
    out, res = quick
    import json

    for name in explore.FIGURES:
        meta = json.loads((out / f"{name}.json").read_text())
        yield name, plots.figure(name, res[name], meta)


def test_every_format_is_written_and_valid(quick):
    from PIL import Image

    out, _ = quick
    for name in explore.FIGURES:
        with Image.open(out / f"{name}.png") as png:
            assert png.format == "PNG" and [round(d) for d in png.info["dpi"]] == [120, 120]
        root = ET.parse(out / f"{name}.svg").getroot()
        assert root.tag == "{http://www.w3.org/2000/svg}svg"
        pdf = (out / f"{name}.pdf").read_bytes()
        assert pdf.startswith(b"%PDF-") and pdf.rstrip().endswith(b"%%EOF")


def _unique_colors(curves):
    """A colour of its own per curve, exact bytes (no antialiasing): where it shows in the rendering, so does the
    curve."""
    codes = {}
    for k, line in enumerate(curves):
        rgb = (k % 250 + 3, k // 250 + 7, 201)
        color = tuple(v / 255 for v in rgb)
        line.set(color=color, markerfacecolor=color, markeredgecolor=color, antialiased=False)
        codes[rgb] = line
    return codes


def _coinciding(curves):
    """Pairs of curves of one panel, the first drawn under the second, whose points lie within 3 pixels of it (in
    the x range both span): the first would be hidden without markers of its own."""
    pairs = []
    for i, low in enumerate(curves):
        for high in curves[i + 1:]:
            if low.axes is not high.axes:
                continue
            p, q = (line.get_transform().transform(line.get_xydata()) for line in (low, high))
            p = p[np.isfinite(p).all(1) & (p[:, 0] >= np.nanmin(q[:, 0])) & (p[:, 0] <= np.nanmax(q[:, 0]))]
            q = q[np.isfinite(q).all(1)]
            if len(p) > 1 and len(q) > 1 and np.mean(np.abs(p[:, 1] - np.interp(p[:, 0], *q.T)) < 3) > 0.8:
                pairs.append((low, high))
    return pairs


def test_every_curve_is_visible(quick):
    """Every curve of the CSV is drawn, shows at least a tenth of its length in the rendering (each curve in a
    colour of its own), and where it coincides with one drawn over it, carries markers placed apart from
    that one's."""
    out, _ = quick
    found = 0
    for name, fig in figures(quick):
        fig.set_dpi(100)
        fig.canvas.draw()
        curves = [line for a in fig.axes for line in a.get_lines() if line.get_gid() == plots.CURVE]
        drawn = [line for line in curves if np.isfinite(np.asarray(line.get_ydata(), float)).any()]
        if SERIES.get(name):
            with open(out / f"{name}.csv", newline="") as f:
                listed = {row[SERIES[name][0]] for row in csv.DictReader(f)}
            assert {line.get_label() for line in drawn} == listed, name
        for low, high in _coinciding(drawn):
            found += 1
            assert low.get_marker() not in ("", "None", None) and low.get_marker() != high.get_marker()
            assert low.get_markevery()[0] != high.get_markevery()[0], (name, low.get_label(), high.get_label())
        codes = _unique_colors(curves)
        for legend in fig.legends:
            legend.set_visible(False)
        fig.canvas.draw()
        pixels = np.asarray(fig.canvas.buffer_rgba())[..., :3].reshape(-1, 3)
        colors, counts = np.unique(pixels, axis=0, return_counts=True)
        seen = {tuple(int(v) for v in c): n for c, n in zip(colors, counts, strict=True)}
        for rgb, line in codes.items():
            xy = line.get_transform().transform(line.get_xydata())
            length = np.nansum(np.abs(np.diff(xy, axis=0)).max(1))  # pixels of a 1-pixel line alone
            assert line not in drawn or seen.get(rgb, 0) >= 0.1 * length, (name, line.get_label())
        plots.pyplot().close(fig)
    assert found  # --quick's curves figure: small uniform under orthogonal, among others


def test_legends_are_legible_and_beside_the_panels(quick):
    for name, fig in figures(quick):
        fig.canvas.draw()
        renderer = fig.canvas.get_renderer()
        if name == "trials":  # one panel, its labels on the x axis
            assert not fig.legends
            continue
        (legend,) = fig.legends
        assert min(t.get_fontsize() for t in legend.get_texts()) >= 10, name
        box = legend.get_window_extent(renderer)
        for a in fig.axes:
            assert not box.overlaps(a.get_tightbbox(renderer)), (name, a.get_title())
        assert fig.get_layout_engine() is not None  # constrained: titles, labels and panels do not overlap
        plots.pyplot().close(fig)


def test_report_links_the_first_format(tmp_path):
    res = explore.run(tmp_path, quick=True, progress=lambda m: None, draw=False, formats=("svg", "png"))
    report = (tmp_path / "report.md").read_text()
    assert "(signal.svg)" in report and res["signal"]["meta"]["figure"] == "signal.svg"
    assert not list(tmp_path.glob("*.svg")) and not re.search(r"\(\w+\.png\)", report)
