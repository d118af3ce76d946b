"""The figures of ``gpuinit explore``, drawn from the same rows that go into each figure's CSV.

Every figure's title states its claim and its network, data and settings; the legend sits below the panels, at
10 pt; a value at a floor (an all-zero tensor, a singular value below float64's resolution) is drawn with its own
marker and named in the legend. Each curve carries its label's marker, placed at an offset of its own along the
curve (``markevery``), so that curves that coincide (in a log panel, curves a factor of two apart do) stay visible
and tell apart, in grey print too. Figures are written as PNG (``dpi``), SVG and PDF (text kept as text).
"""
import re

import numpy as np

from .. import extras

MEASURED, PREDICTED = "measured, RMS over all draws", "predicted"
COLORS = {"small uniform ±0.01": "tab:blue", "large uniform ±1": "tab:orange", "Glorot": "tab:green",
          "Xavier logistic": "tab:olive", "LeCun": "tab:red", "He": "tab:purple", "He leaky (a=0.2)": "tab:pink",
          "orthogonal": "tab:brown", "identity": "tab:cyan", "sparse 90%": "tab:gray",
          "He fan-average": "tab:gray", "constant 0.5": "tab:red",
          "same start": "tab:red", "sigmoid": "tab:blue", "tanh": "tab:orange", MEASURED: "tab:blue", PREDICTED: "k"}
STYLES = {"He leaky (a=0.2)": "--", "Xavier logistic": "--", "identity": "--", "He fan-average": "--",
          PREDICTED: "--"}
MARKERS = {"small uniform ±0.01": "o", "large uniform ±1": "s", "Glorot": "^", "Xavier logistic": "v", "LeCun": "D",
           "He": "P", "He leaky (a=0.2)": "X", "orthogonal": "*", "identity": "h", "sparse 90%": "<",
           "He fan-average": ">", "constant 0.5": "o", "same start": "o", "sigmoid": "o", "tanh": "s", MEASURED: "o",
           PREDICTED: "x"}
FORMATS = ("png", "svg", "pdf")
DPI = 200  # PNG: a print resolution (the figures are 10-20 inches wide)
LEGEND_PT = 10
LEGEND_COLUMN_INCHES = 3.4  # a legend column at 10 pt: the longest labels (30-40 characters) and their line
CURVE = "curve"  # the gid of a line that gets markers along it


NO_MATPLOTLIB = f"gpuinit explore draws with matplotlib: {extras.pip('plot')}"


def pyplot():
    try:
        import matplotlib
    except ImportError:
        raise RuntimeError(NO_MATPLOTLIB) from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def warm():
    """Load pyplot and render some text (fonts, the Agg canvas), so that the first figure does not pay for it."""
    import io

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(4, 3), layout="constrained")
    ax.set(title="warm", yscale="log", ylim=(1e-3, 1))
    ax.plot([1, 2], [0.1, 0.5], label="warm")
    _finish(fig)
    fig.savefig(io.BytesIO(), format="png", dpi=72)
    plt.close(fig)


def figure(name, r, meta):
    """Figure ``name`` (a matplotlib Figure) from its result ``r`` (rows, summary; no tensors)."""
    return globals()[name](pyplot(), r, meta)


def draw(name, r, meta, stem, formats=("png",), dpi=DPI):
    """Draw figure ``name`` into ``stem``.png / .svg / .pdf, one file per format in ``formats``."""
    plt = pyplot()
    fig = figure(name, r, meta)
    for fmt in formats:
        fig.savefig(f"{stem}.{fmt}", format=fmt, dpi=dpi, metadata=_NO_DATES[fmt])
    plt.close(fig)


_NO_DATES = {"png": {"Software": None}, "svg": {"Date": None}, "pdf": {"CreationDate": None}}  # files alike run to run


def _figure(plt, meta, nrows, ncols, size):
    fig, ax = plt.subplots(nrows, ncols, figsize=size, squeeze=False, layout="constrained")
    fig.suptitle(f"{meta['claim']}\n{meta['network']}; {meta['data']}", fontsize=11)
    return fig, ax


_SUPER = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")
_MATH = re.compile(r"^\$\\mathdefault\{(?:([0-9.]+)\\times)?10\^\{(-?[0-9]+)\}\}\$$")


def plain_log_label(label):
    """matplotlib's log tick label ``$\\mathdefault{2\\times10^{-3}}$`` as plain text ``2×10⁻³``: the same glyphs
    without a mathtext parse per label (about a third of the drawing time in a fresh process). Others are left
    as they are."""
    m = _MATH.match(label)
    if not m:
        return label
    return (f"{m[1]}×" if m[1] else "") + "10" + m[2].translate(_SUPER)


def _plain_log_ticks(ax):
    """Plain-text labels on log axes, and no minor ticks on a log axis of more than three decades: there
    matplotlib leaves them unlabelled, and each tick is an artist (they were most of the scale figure's ticks)."""
    import matplotlib.ticker as mt

    for axis, scale in ((ax.xaxis, ax.get_xscale()), (ax.yaxis, ax.get_yscale())):
        if scale == "log":
            lo, hi = sorted(axis.get_view_interval())
            if lo > 0 and hi > 1e3 * lo:
                axis.set_minor_locator(mt.NullLocator())
            for minor in (False, True):
                base = mt.LogFormatterSciNotation(labelOnlyBase=not minor)
                fmt = mt.FuncFormatter(lambda v, pos, base=base: plain_log_label(base(v, pos)))
                fmt.set_locs = base.set_locs  # the base formatter decides which minor ticks get a label
                fmt.axis = base.axis = axis
                (axis.set_minor_formatter if minor else axis.set_major_formatter)(fmt)


def _finish(fig):
    """Markers along each curve, a legend of every label below the panels (constrained layout makes room for it
    and for the titles: nothing overlaps); returns the figure."""
    handles, labels = {}, []
    for a in fig.axes:
        _plain_log_ticks(a)
        _spread_markers(a)
        for h, lab in zip(*a.get_legend_handles_labels(), strict=True):
            if lab not in handles:
                handles[lab] = h
                labels.append(lab)
    labels.sort(key=lambda lab: lab in (NOISE, FLOOR))  # the markers' entries after the curves'
    if labels:
        ncol = max(1, int(fig.get_figwidth() / LEGEND_COLUMN_INCHES))
        fig.legend([handles[k] for k in labels], labels, loc="outside lower center", ncol=min(ncol, len(labels)),
                   fontsize=LEGEND_PT, frameon=False)
    return fig


def _spread_markers(ax):
    """Markers along the axes' curves every ``step`` of the axes' diagonal, curve k of n starting at k / n of a
    step: markers of curves that coincide fall apart, at least two markers' widths."""
    curves = [line for line in ax.get_lines() if line.get_gid() == CURVE]
    step = max(0.1, 0.03 * len(curves))
    for k, line in enumerate(curves):
        line.set_markevery((step * (k + 0.5) / len(curves), step))


def _curve(ax, xs, ys, label, style="-", color=None, **kw):
    """A labelled curve in its label's colour, line style and marker."""
    return ax.plot(xs, ys, style if style != "-" else STYLES.get(label, "-"), color=color or COLORS[label],
                   label=label, marker=MARKERS.get(label, "o"), ms=4.5, lw=1.4, gid=CURVE, **kw)


def _sel(rows, **kw):
    return [r for r in rows if all(r[k] == v for k, v in kw.items())]


def _order(rows, *keys):
    """The distinct values of ``keys`` in the rows, in the order the experiment computed them (one tuple per
    combination for several keys); the figures take their panels and curves from the data, not from the
    experiment modules (which would load torch into the drawing process)."""
    return list(dict.fromkeys(r[keys[0]] if len(keys) == 1 else tuple(r[k] for k in keys) for r in rows))


NOISE = "below float64 resolution (open markers)"
FLOOR = "exactly 0 (drawn at the bottom)"


def _noise_markers(ax, xs, ys, color, marker):
    """Values that are rounding noise, as open markers of the curve's shape and colour (where several curves sit
    at one bound, each outline shows), with one black legend entry."""
    ax.plot(xs, ys, marker, mfc="none", ms=4, color=color, ls="none")
    if NOISE not in ax.get_legend_handles_labels()[1]:
        ax.plot([], [], "o", mfc="none", ms=4, color="k", ls="none", label=NOISE)


def _log_series(ax, xs, logs, floors, label, noise=None):
    """Plot 10 ** log against x; entries at the floor (an all-zero tensor) are drawn as triangles at the bottom,
    entries flagged in ``noise`` (below float64's resolution; the value is the bound) as open circles."""
    noise = noise or [0] * len(xs)
    ys = np.array([10.0 ** v if not f else np.nan for v, f in zip(logs, floors, strict=True)])
    color = COLORS[label]
    _curve(ax, xs, np.where(np.array(noise, bool), np.nan, ys), label)
    if any(noise):
        _noise_markers(ax, [x for x, n in zip(xs, noise, strict=True) if n], ys[np.array(noise, bool)], color,
                       MARKERS[label])
    if any(floors):
        bottom = np.nanmin(ys) / 10 if np.isfinite(ys).any() else 1e-300
        ax.plot([x for x, f in zip(xs, floors, strict=True) if f], [bottom] * sum(floors), "v", color=color,
                label=FLOOR)


def symmetry(plt, r, meta):
    fig, ax = _figure(plt, meta, 1, 3, (13, 4))
    for label in ("constant 0.5", "Glorot"):
        rows = _sel(r["rows"], start=label)
        _curve(ax[0, 0], [x["step"] for x in rows], [x["spread"] for x in rows], label)
        _curve(ax[0, 1], [x["step"] for x in rows], [x["loss"] for x in rows], label)
        w = np.asarray(r["w1"][label])
        ax[0, 2].scatter(w[:, 0], w[:, 1], s=60 if label != "Glorot" else 25, color=COLORS[label], alpha=0.7)
    ax[0, 0].set(xlabel="step", ylabel="spread of the hidden units' weights\n(0 = all units equal)",
                 title="units that start equal stay equal")
    ax[0, 1].set(xlabel="step", ylabel="loss (binary cross-entropy)", title="training loss")
    n = len(r["w1"]["Glorot"])
    ax[0, 2].set(xlabel="weight from input x1", ylabel="weight from input x2",
                 title=f"the {n} hidden units' weights after training\n(constant start: all {n} on one point)")
    return _finish(fig)


def trials(plt, r, meta):
    fig, ax = _figure(plt, meta, 1, 1, (10, 4.8))
    labels = list(dict.fromkeys(x["start"] for x in r["rows"]))
    rng = np.random.default_rng(0)
    for k, label in enumerate(labels):
        v = [x["final_loss"] for x in _sel(r["rows"], start=label)]
        ax[0, 0].boxplot([v], positions=[k], widths=0.5, showfliers=False)
        ax[0, 0].scatter(k + rng.uniform(-0.15, 0.15, len(v)), v, s=14, color=COLORS[label], alpha=0.7, zorder=3)
    ax[0, 0].set_xticks(range(len(labels)), labels)
    ax[0, 0].set(ylabel="final loss (one point per trial)",
                 title="different starts explore; the same start (Glorot, seed 0) ends at one loss in every trial")
    return _finish(fig)


def scale(plt, r, meta):
    fig, ax = _figure(plt, meta, 1, 3, (14, 4.2))
    s = r["summary"]
    for act in ("sigmoid", "tanh"):
        rows = _sel(r["rows"], activation=act)
        rs = [x["r"] for x in rows]
        _log_series(ax[0, 0], rs, [x["log10_grad_gain"] for x in rows], [x["grad_at_floor"] for x in rows], act)
        _curve(ax[0, 1], rs, [x["saturated"] for x in rows], act)
        _log_series(ax[0, 2], rs, [x["log10_act_std_last"] for x in rows], [x["act_at_floor"] for x in rows],
                    act, noise=[x["act_below_resolution"] for x in rows])
    for a in ax[0]:
        a.set_xscale("log")
        a.axvline(s["glorot_r"], color="k", ls=":", lw=1, label=f"Glorot bound r = {s['glorot_r']:.3g}")
        a.axvline(s["logistic_r"], color="k", ls="--", lw=1, label=f"Xavier logistic r = {s['logistic_r']:.3g}")
        a.set_xlabel("uniform range r (weights ~ U(-r, r))")
    ax[0, 0].axhline(1, color="gray", lw=0.8)
    ax[0, 0].set(yscale="log", ylabel="gradient RMS at layer 1 / at layer 16",
                 title="gradient growth back through the net\n(1 = neither vanishing nor exploding)")
    ax[0, 1].set(ylabel="fraction of saturated units (f' < f'(0)/10)", title="saturation", ylim=(-0.02, 1.02))
    ax[0, 2].set(yscale="log", ylabel="activation std over the inputs, layer 16",
                 title="forward signal at the last layer")
    return _finish(fig)


def signal(plt, r, meta):
    fig, ax = _figure(plt, meta, 2, 4, (17, 7.5))
    for j, act in enumerate(_order(r["rows"], "activation")):
        for label in _order(_sel(r["rows"], activation=act), "init"):
            rows = _sel(r["rows"], activation=act, init=label)
            layers = [x["layer"] for x in rows]
            _log_series(ax[0, j], layers, [x["log10_act_std"] for x in rows], [x["act_at_floor"] for x in rows],
                        label, noise=[x["act_below_resolution"] for x in rows])
            _log_series(ax[1, j], layers, [x["log10_grad_rms"] for x in rows], [x["grad_at_floor"] for x in rows],
                        label)
        ax[0, j].set(yscale="log", title=act if act != "leaky_relu" else "leaky_relu (slope 0.2)")
        ax[1, j].set(yscale="log", xlabel="layer (widths 256→64→256→…)")
    ax[0, 0].set_ylabel("activation std over the inputs (forward)")
    ax[1, 0].set_ylabel("gradient RMS dL/dz (backward)")
    return _finish(fig)


def derivations(plt, r, meta):
    fig, ax = _figure(plt, meta, 2, 5, (20, 7.5))
    for j, (act, label) in enumerate(_order(r["rows"], "activation", "init")):
        rows = _sel(r["rows"], activation=act, init=label)
        layers = [x["layer"] for x in rows]
        for i, key in enumerate(("z_rms", "grad_rms")):
            a = ax[i, j]
            a.fill_between(layers, [10 ** x[f"log10_{key}_min"] for x in rows],
                           [10 ** x[f"log10_{key}_max"] for x in rows], color="tab:blue", alpha=0.2,
                           label="measured, min-max over weight draws")
            _curve(a, layers, [10 ** x[f"log10_{key}_all_seeds"] for x in rows], MEASURED)
            _curve(a, layers, [10 ** x[f"predicted_log10_{key}"] for x in rows], PREDICTED)
            a.set(yscale="log")
        ax[0, j].set(title=f"{label}, {act}")
        ax[1, j].set(xlabel="layer (widths 256→64→256→…)")
    ax[0, 0].set_ylabel("RMS of pre-activation z")
    ax[1, 0].set_ylabel("RMS of gradient dL/dz")
    return _finish(fig)


def other_forms(plt, r, meta):
    fig, ax = _figure(plt, meta, 1, 3, (15, 4.4))
    for label in _order(r["rows"], "init"):
        sv = _sel(r["rows"], init=label, quantity="singular_value")
        ok = [x for x in sv if not x["below_resolution"]]
        low = [x for x in sv if x["below_resolution"]]
        _curve(ax[0, 0], [x["index"] for x in ok], [x["value"] for x in ok], label)
        if low:
            _noise_markers(ax[0, 0], [x["index"] for x in low], [x["value"] for x in low], COLORS[label],
                           MARKERS[label])
        for k, q in enumerate(("act_std", "grad_rms"), 1):
            rows = _sel(r["rows"], init=label, quantity=q)
            _log_series(ax[0, k], [x["index"] for x in rows], [x["log10_value"] for x in rows],
                        [x["at_floor"] for x in rows], label, noise=[x["below_resolution"] for x in rows])
    res = max(v for k, v in r["summary"].items() if k.endswith("_sv_resolution"))
    ax[0, 0].axhline(res, color="k", ls=":", lw=1, label="float64 resolution (n eps σ_max)")
    ax[0, 0].set(yscale="log", xlabel="index", ylabel="singular value",
                 title="end-to-end map of the linear net:\nsingular values (orthogonal, identity: all 1)")
    ax[0, 1].set(yscale="log", xlabel="layer", ylabel="activation std over the inputs", title="tanh net: forward")
    ax[0, 2].set(yscale="log", xlabel="layer", ylabel="gradient RMS dL/dz", title="tanh net: backward")
    return _finish(fig)


def curves(plt, r, meta):
    fig, ax = _figure(plt, meta, 1, 2, (14, 4.8))
    for label in r["summary"]["by_init"]:
        runs = sorted({x["seed"] for x in r["rows"] if x["init"] == label})
        h = np.array([[x["loss"] for x in _sel(r["rows"], init=label, seed=sd)] for sd in runs])
        steps = np.arange(h.shape[1])
        ax[0, 0].fill_between(steps, h.min(0), h.max(0), color=COLORS[label], alpha=0.18)
        _curve(ax[0, 0], steps, np.median(h, 0), label)
        pr = [x for x in r["per_run"] if x["init"] == label]
        ax[0, 1].scatter([x["w1_rms_start"] for x in pr], [x["loss_end"] for x in pr], color=COLORS[label], s=22)
        ax[0, 1].scatter([x["w1_rms_end"] for x in pr], [x["loss_end"] for x in pr], color=COLORS[label], s=22,
                         marker="x")
    n = len({x["seed"] for x in r["rows"]})
    ax[0, 0].set(yscale="log", xlabel="step", ylabel="loss (binary cross-entropy)",
                 title=f"median (line) and min-max (band) over {n} weight seeds")
    ax[0, 1].scatter([], [], color="k", s=22, label="first-layer weight RMS at the start (dots)")
    ax[0, 1].scatter([], [], color="k", s=22, marker="x", label="… and at the end (crosses)")
    ax[0, 1].set(xscale="log", yscale="log", xlabel="RMS of the first layer's weights (2 → 32)",
                 ylabel="final loss", title="the first layer's weight scale, start and end, vs final loss")
    return _finish(fig)
