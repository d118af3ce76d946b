"""Captions, summary numbers and report.md for ``gpuinit explore``.

Every number report.md quotes is a value of a figure's summary (written to NAME.json) or settings, printed with
``_g`` (3 significant digits); the summaries are computed from the rows written to NAME.csv.
"""
import statistics


def _g(v):
    return f"{v:.3g}"


def _spirals(st):
    return f"two spirals, {st['points']} points (data seed {st.get('data_seed', st.get('seed', 0))})"


CAPTIONS = {
    "symmetry": lambda r: {
        "section": "3.1", "claim": "Symmetry within a network: hidden units that start equal stay equal",
        "network": f"{r['settings']['net']} MLP, biases 0, full-batch Adam lr {_g(r['settings']['lr'])}, "
                   f"{r['settings']['steps']} steps", "data": _spirals(r["settings"])},
    "trials": lambda r: {
        "section": "3.2", "claim": "Symmetry across networks: trials from the same start all end at the same loss",
        "network": f"{r['settings']['trials']} trials per start of a {r['settings']['net']} MLP, biases 0, "
                   f"full-batch Adam lr {_g(r['settings']['lr'])}, {r['settings']['steps']} steps",
        "data": _spirals(r["settings"])},
    "scale": lambda r: {
        "section": "4", "claim": "The scale of a uniform draw: too small a range makes the signal vanish, too large "
                                 "saturates the units",
        "network": f"{r['settings']['depth']}-layer MLP without biases, widths 256, 64, 256, ..., "
                   f"weights U(-r, r) for {r['settings']['r_values']} values of r",
        "data": f"{r['settings']['batch']} inputs x ~ N(0, 1), float64; L = sum(h_L * u), u ~ N(0, 1)"},
    "signal": lambda r: {
        "section": "4, 5", "claim": "Forward activation std and backward gradient RMS per layer, by activation "
                                    "and scheme",
        "network": f"{r['settings']['depth']}-layer MLP without biases, widths 256, 64, 256, ... (alternating), "
                   f"leaky slope {_g(r['settings']['leaky_slope'])}",
        "data": f"{r['settings']['batch']} inputs x ~ N(0, 1), float64; L = sum(h_L * u), u ~ N(0, 1); "
                "gradients in the log domain"},
    "derivations": lambda r: {
        "section": "5.1, 5.2", "claim": "Xavier-Bengio's and He's derivations: predicted (dashed) and measured "
                                        "RMS per layer",
        "network": f"{r['settings']['depth']}-layer MLP without biases, widths 256, 64, 256, ..., "
                   f"{r['settings']['seeds']} weight draws",
        "data": f"{r['settings']['batch']} inputs x ~ N(0, 1), float64; L = sum(h_L * u), u ~ N(0, 1)"},
    "other_forms": lambda r: {
        "section": "6", "claim": "Other forms: orthogonal, identity and sparse (90% zeros) starts against Glorot",
        "network": f"{r['settings']['depth']}-layer square MLP, width {r['settings']['width']}, no biases: "
                   "linear (left), tanh (middle, right)",
        "data": f"{r['settings']['batch']} inputs x ~ N(0, 1), float64"},
    "curves": lambda r: {
        "section": "1, 7", "claim": "Speed and quality of convergence by initializer",
        "network": f"{r['settings']['net']} MLP, biases 0, full-batch Adam lr {_g(r['settings']['lr'])}, "
                   f"{r['settings']['steps']} steps, weight seeds 0-{r['settings']['seeds'] - 1}",
        "data": _spirals(r["settings"])},
}


def _spearman(a, b):
    def ranks(v):
        order = sorted(range(len(v)), key=v.__getitem__)
        out = [0] * len(v)
        for k, i in enumerate(order):
            out[i] = k
        return out

    ra, rb = ranks(a), ranks(b)
    n = len(a)
    return 1 - 6 * sum((x - y) ** 2 for x, y in zip(ra, rb, strict=True)) / (n * (n * n - 1))


def summarize(name, r):
    """The summary numbers of a training experiment, from its rows (the deep experiments bring their own)."""
    rows = r["rows"]
    if name == "symmetry":
        s = {}
        for start in dict.fromkeys(x["start"] for x in rows):
            mine = [x for x in rows if x["start"] == start]
            key = "constant" if start != "Glorot" else "glorot"
            s.update({f"{key}_spread_max": max(x["spread"] for x in mine), f"{key}_spread_last": mine[-1]["spread"],
                      f"{key}_loss_first": mine[0]["loss"], f"{key}_loss_last": mine[-1]["loss"]})
        return s
    if name == "trials":
        s = {}
        for start in dict.fromkeys(x["start"] for x in rows):
            v = [x["final_loss"] for x in rows if x["start"] == start]
            s[start] = {"median": statistics.median(v), "min": min(v), "max": max(v), "std": statistics.pstdev(v)}
        return s
    if name == "curves":
        by = {}
        for label in dict.fromkeys(x["init"] for x in r["per_run"]):
            pr = [x for x in r["per_run"] if x["init"] == label]

            def med(k, pr=pr):
                return statistics.median([x[k] for x in pr])

            by[label] = {"final_median": med("loss_end"), "final_min": min(x["loss_end"] for x in pr),
                         "final_max": max(x["loss_end"] for x in pr), "w1_rms_start": med("w1_rms_start"),
                         "w1_rms_end": med("w1_rms_end"), "saturated_start": med("saturated_start"),
                         "loss_start": med("loss_start")}
        pr = r["per_run"]
        return {"by_init": by, "ranking": sorted(by, key=lambda k: by[k]["final_median"]),
                "rank_corr_w1_start_final": _spearman([x["w1_rms_start"] for x in pr], [x["loss_end"] for x in pr]),
                "linear_model_loss": r["linear_model_loss"]}
    return r.get("summary", {})


def report(res, meta):
    """report.md from the results and each figure's metadata (captions, settings, summary)."""
    parts = [HEAD]
    parts.append("| figure | tutorial section | claim |\n|---|---|---|")
    for m in meta.values():
        sections = ", ".join(f"§{x}" for x in m["section"].split(", "))
        parts.append(f"| [{m['figure']}]({m['figure']}) | {sections} | {m['claim']} |")
    for name, m in meta.items():
        schemes = m["settings"].get("schemes")
        named = (" *Schemes (gpuinit names):* " + "; ".join(f"{k} = {v}" for k, v in schemes.items()) + "."
                 if schemes else "")
        parts.append(f"\n## {m['claim']}\n\n![{name}]({m['figure']})\n\n*Network:* {m['network']}. *Data:* {m['data']}."
                     f"{named} *Data behind the figure:* [{name}.csv]({name}.csv), settings and summary in "
                     f"[{name}.json]({name}.json).\n")
        parts.append(TEXT[name](m["summary"], m["settings"]))
    return "\n".join(parts) + "\n"


HEAD = """# Why initialization matters: the tutorial's experiments

Every weight below was written by gpuinit. Each figure (NAME.png, .svg or .pdf) has its data beside it: NAME.csv
(one row per plotted point) and NAME.json (network, data, settings and the summary numbers quoted here). Runs are
identical run to run: data and weights are seeded, training is full-batch, and the experiments run with one torch
thread and deterministic algorithms. Deep-network statistics are exact: forward passes in float64, every
RMS and std computed as a log10 via logsumexp of 2 log|x|, and the backward pass rescaled at each layer
with its scale carried as a log10, so nothing under- or overflows (a value that is exactly 0 would be
drawn as a triangle at the bottom of its panel and flagged `at_floor` in the CSV). The activation std is each
unit's std over the inputs (RMS over units): the signal a layer passes on. Where it is below float64's
resolution of the activations (64 eps times their RMS: a sigmoid's variation around its mean of 1/2), it is
drawn as an open circle at that bound and flagged `below_resolution`: the true value is smaller.

Which figure shows which claim:
"""



def _symmetry(s, st):
    return f"""Started from a constant (every weight {_g(st['constant'])}, biases 0), all {st['net'].split('-')[1]}
hidden units compute the same function and receive the same gradient; Adam updates each weight from its
own gradient, so they stay identical: the largest spread of their incoming weights over all {st['steps']}
steps is {_g(s['constant_spread_max'])} (right panel: all units on one point), and the loss stalls at
{_g(s['constant_loss_last'])}: the net is in effect a 2-1-1 net. From a Glorot start the units differ (spread
{_g(s['glorot_spread_last'])} at the end) and the loss reaches {_g(s['glorot_loss_last'])}."""


def _trials(s, st):
    rows = "\n".join(f"| {k} | {_g(v['median'])} | {_g(v['min'])} | {_g(v['max'])} | {_g(v['std'])} |"
                     for k, v in s.items())
    return f"""The tutorial's trials: {st['trials']} copies of one 2-{st['net'].split('-')[1]}-1 architecture, each
trained on the same data. Each initializer filled all copies' weights in one batched call (batch axis 0:
independent copies). Started from the same weights, every trial follows the same path to the same loss (spread
{_g(s['same start']['std'])}): the trials explore nothing. Training here is full batch, so the paths are identical;
with minibatches in a random order they would be "the same or very similar", as the tutorial says. Random
starts end at different losses:

| start | median final loss | min | max | std over trials |
|---|---|---|---|---|
{rows}
"""


def _scale(s, st):
    return f"""Weights drawn from U(-r, r) for r from {_g(s['r_min'])} to {_g(s['r_max'])}. With a small r the signal
and the gradient shrink geometrically with depth: at r = {_g(s['r_min'])} the gradient at layer 1 is
{_g(s['sigmoid_grad_gain_small_r'])} (sigmoid) and {_g(s['tanh_grad_gain_small_r'])} (tanh) times the gradient at the
last layer. With a large r the units saturate (the tutorial's "poor resolution for extreme values"): at
r = {_g(s['r_max'])}, {_g(s['sigmoid_saturated_large_r'])} (sigmoid) and {_g(s['tanh_saturated_large_r'])} (tanh)
of the units have f' below a tenth of f'(0). In a deep net the gradient then does not vanish but explodes
(growth {_g(s['tanh_grad_gain_large_r'])} for tanh): the few unsaturated units see weights that are too large.
On this grid the gradient passes through most nearly unchanged at r = {_g(s['tanh_balanced_r'])} for tanh and at
r = {_g(s['sigmoid_balanced_r'])} for sigmoid, where {_g(s['sigmoid_balanced_saturated'])} of the sigmoid units are
already saturated. The bounds of the derivations are not these points: at Glorot's bound r = {_g(s['glorot_r'])}
(for widths 256 and 64) the tanh gradient still shrinks to {_g(s['tanh_grad_gain_at_glorot_r'])} of its size over
the {st['depth']} layers (log-log interpolation between grid points), because the fan average preserves the
variance in neither direction when fan_in != fan_out (see the derivations figure); at the Xavier-logistic bound
r = {_g(s['logistic_r'])} the sigmoid gradient shrinks to {_g(s['sigmoid_grad_gain_at_logistic_r'])} (its mean of
1/2, which the derivation leaves out, offsets and saturates the units: see the signal figure)."""


def _signal(s, st):
    return f"""Each activation with the schemes offered for it (Xavier logistic for sigmoid, He's leaky form with
a = {_g(st['leaky_slope'])} for leaky ReLU). Layers alternate between 256 and 64 units, so fan_in and fan_out differ
and Glorot (fan average), LeCun (fan_in), He and orthogonal draw different curves. Every curve is one weight
draw (seed {st['seed']}); the derivations figure shows the spread over draws. With ReLU, He keeps the activation
std between {_g(s['relu_he_act_std_min'])} and {_g(s['relu_he_act_std_max'])} over all {st['depth']} layers in
this draw. He's fan-average form (2 / fan_avg, Kwon et al.) loses signal as Glorot does, its fan average shrinking
the variance over each 256→64→256 pair (std {_g(s['relu_hefanavg_act_std_last'])} at the last layer). A small
uniform (±0.01) collapses the std to {_g(s['relu_small_act_std_last'])} by the last layer and its
gradient at layer 1 to {_g(s['relu_small_grad_rms_first'])}; a large uniform (±1) blows it up to
{_g(s['relu_large_act_std_last'])}. These values are exact: a plain float32 computation (z.grad.pow(2).mean().sqrt())
loses {s['float32_lost_layers_relu_small']} of {st['depth']} layers' gradient RMS to underflow for the small uniform
and {s['float32_lost_layers_relu_large']} to overflow for the large one. Sigmoid under Glorot loses its gradient
(RMS {_g(s['sigmoid_glorot_grad_first'])} at layer 1 against {_g(s['sigmoid_glorot_grad_last'])} at the last) while
tanh keeps much more of it ({_g(s['tanh_glorot_grad_first'])} against {_g(s['tanh_glorot_grad_last'])}). A large
uniform saturates tanh ({_g(s['tanh_large_saturated_last'])} of the last layer's units have f' < f'(0)/10).

The sigmoid's forward signal decays under every scheme, slowest under the large uniform and Xavier logistic
(whose larger weights make up for the slope of 1/4 in part): under the small uniform it falls
from {_g(s['sigmoid_small_act_std_first'])} at layer 1 {_below(s)} Xavier
logistic still loses the gradient (RMS {_g(s['sigmoid_logistic_grad_first'])} at layer 1
against {_g(s['sigmoid_logistic_grad_last'])} at the last): its derivation linearizes the sigmoid around 0 as
1/2 + z/4 and leaves out the mean of 1/2, which gives every unit an input-independent offset (1/2) sum_j W_ij
of std {_g(s['logistic_offset_std_wide'])} (256 inputs) or {_g(s['logistic_offset_std_narrow'])} (64 inputs); away
from 0 the slope is well below 1/4 (the derivations figure shows the prediction failing).

With leaky ReLU, He's ReLU form and He's leaky form scale the same draws, by sqrt(2) and sqrt(2 / (1 + a^2)), so
their activation stds at the last layer differ by exactly (1 + a^2)^(L/2) = {_g(s['leaky_he_over_heleaky_theory'])}
(measured {_g(s['leaky_he_over_heleaky_last'])}: {_g(s['leaky_he_act_std_last'])} against
{_g(s['leaky_heleaky_act_std_last'])}). Which of the two keeps the scale cannot be read from one draw, whose level
drifts; averaged over draws, the leaky form matches its prediction (derivations figure). Values that are exactly
0 (none here: {s['floor_rows']} rows at the floor) would be drawn as triangles and flagged in the CSV."""


def _below(s):
    k = s["sigmoid_small_resolution_layer"]
    if not k:
        return "and stays above float64's resolution in every layer."
    return (f"below float64's resolution from layer {k} on (open circles; {s['below_resolution_rows']} such rows "
            "in all).")


def _derivations(s, st):
    return f"""The derivations predict the RMS of z_l (forward) and of dL/dz_l (backward) per layer from the weight
variance alone: Var z_l = n_in Var(W) E f(z_(l-1))^2, Var g_l = E f'(z_l)^2 n_out Var(W) Var g_(l+1). They predict
an expectation over weight draws, so the measured line is the RMS over all {st['seeds']} draws (band: min to max
of the single draws). The largest factor between measured and predicted RMS over all layers (measured over
predicted or predicted over measured, whichever is larger): linear {_g(s['linear_max_ratio'])}, ReLU
{_g(s['relu_max_ratio'])}, leaky ReLU {_g(s['leaky_relu_max_ratio'])}: the derivations hold. For tanh the linear
assumption fails where z is not small (factor {_g(s['tanh_max_ratio'])}): tanh compresses, so z shrinks faster than
predicted ({_g(s['tanh_z_rms_last'])} against {_g(s['tanh_pred_z_rms_last'])} at the last layer). For the sigmoid
under Xavier logistic the derivation fails outright (factor {_g(s['sigmoid_max_ratio'])}): it takes the sigmoid as
z/4 around 0, but the sigmoid's mean of 1/2 keeps z at RMS {_g(s['sigmoid_z_rms_last'])} (predicted
{_g(s['sigmoid_pred_z_rms_last'])} at the last layer), where the slope is far below 1/4, and the gradient at
layer 1 is {_g(s['sigmoid_grad_rms_first'])} against a predicted {_g(s['sigmoid_pred_grad_rms_first'])}.
Glorot's fan average preserves neither direction when
fan_in != fan_out: each 256→64→256 pair multiplies the forward variance by {_g(s['glorot_pair_factor'])}, as
predicted and measured (linear: {_g(s['linear_z_rms_last'])} against {_g(s['linear_pred_z_rms_last'])} at the last
layer). He (fan_in) keeps the forward RMS at {_g(s['relu_pred_z_rms_last'])} (measured {_g(s['relu_z_rms_last'])}
over all draws; single draws from {_g(s['relu_z_rms_last_min'])} to {_g(s['relu_z_rms_last_max'])}: at width 64
the fluctuations between draws compound over depth)."""


def _other(s, st):
    return f"""Through {st['depth']} square layers the end-to-end map of a linear net keeps every singular value at 1
with orthogonal weights (all within {_g(s['orthogonal_sv_dev_from_1'])} of 1) and trivially with the
identity ({_g(s['identity_sv_dev_from_1'])}), while Glorot's Gaussian product spreads them from
{_g(s['Glorot_sv_max'])} down to below float64's resolution ({s['Glorot_sv_below_resolution']} of {st['width']}
values are rounding noise, hollow markers), and the
sparse start ({_g(st['sparsity'])} of each column zero, variance 1/fan_in) likewise
({s['sparse 90%_sv_below_resolution']} below resolution). In the tanh net the identity keeps the most signal
(std {_g(s['identity_tanh_act_std_last'])} at the last layer against {_g(s['orthogonal_tanh_act_std_last'])} for
orthogonal and {_g(s['Glorot_tanh_act_std_last'])} for Glorot) but never mixes units: unit i only ever sees input i."""


def ranking_text(b, rk):
    """The ranking, with "=" between neighbours whose final losses over the seeds (min to max) overlap: a tie."""
    out = rk[0]
    for prev, cur in zip(rk[:-1], rk[1:], strict=True):
        tie = b[cur]["final_min"] <= b[prev]["final_max"]
        out += (" = " if tie else " < ") + cur
    return out + " (\"=\": their ranges over the seeds overlap)"


def _curves(s, st):
    b, rk = s["by_init"], s["ranking"]
    rows = "\n".join(f"| {k} | {_g(v['final_median'])} | {_g(v['final_min'])} | {_g(v['final_max'])} | "
                     f"{_g(v['w1_rms_start'])} | {_g(v['w1_rms_end'])} | {_g(v['loss_start'])} |" for k, v in b.items())
    return f"""Ranking by median final loss over the {st['seeds']} seeds: {ranking_text(b, rk)}.

| init | median final loss | min | max | first-layer weight RMS, start | … end | loss at step 0 |
|---|---|---|---|---|---|---|
{rows}

Why this order: the first layer has fan_in 2 and fan_out {st['net'].split('-')[1]}, so the schemes give it very
different scales. LeCun and He scale by fan_in (RMS {_g(b['LeCun']['w1_rms_start'])} and
{_g(b['He']['w1_rms_start'])}), Glorot by the fan average ({_g(b['Glorot']['w1_rms_start'])}), orthogonal gives
unit-norm columns of length 32 ({_g(b['orthogonal']['w1_rms_start'])}). Two spirals of one and a half turns in the
unit disc need steep first-layer features:
the best runs end with first-layer RMS near {_g(b[rk[0]]['w1_rms_end'])}. Adam moves each weight by about the
learning rate per step, so a run that starts far below that scale spends its steps growing its weights (Glorot ends
at {_g(b['Glorot']['w1_rms_end'])}, orthogonal at {_g(b['orthogonal']['w1_rms_end'])}). Over all runs the rank
correlation of the starting first-layer RMS with the final loss is {_g(s['rank_corr_w1_start_final'])}. This is an
association across schemes, which also scale the 32 x 32 and output layers differently; the first layer's scale
is the largest of those differences here and matches the mechanism above. That is why a large uniform (±1,
first-layer RMS {_g(b['large uniform ±1']['w1_rms_start'])}) beats Glorot on this tiny task,
though its ±1 output weights cost it a higher starting loss ({_g(b['large uniform ±1']['loss_start'])}). The small
uniform (±0.01) keeps every tanh in its linear range and stays at {_g(b['small uniform ±0.01']['final_median'])},
the loss of the best linear classifier on these data ({_g(s['linear_model_loss'])}, fitted alongside). The ranking is
this task's (2 inputs, Adam); with many inputs per unit or plain SGD the gradient-scale arguments of the deep-net
figures take over."""


TEXT = {"symmetry": _symmetry, "trials": _trials, "scale": _scale, "signal": _signal, "derivations": _derivations,
        "other_forms": _other, "curves": _curves}
