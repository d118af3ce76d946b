"""The deep-network experiments of ``gpuinit explore`` as tables (rows of dicts) with their settings and the
summary numbers the report quotes: signal by activation and scheme, the derivations checked, the scale of a
uniform draw, and the other forms (orthogonal, identity, sparse)."""
import math

import numpy as np
import torch

from . import nets


def _val(lg):
    """(log10, value, at_floor) of a log10 statistic; None (an all-zero tensor) is the marked floor."""
    return ("", 0.0, 1) if lg is None else (lg, 10.0 ** lg, 0)


def _float32_losses(act, label, ws, batch, seed):
    """How many layers' gradient RMS a plain float32 autograd computation (z.grad.pow(2).mean().sqrt())
    loses to underflow (0) or overflow (inf or nan): the failure the float64 / log-domain path avoids."""
    f, _ = nets.ACTS[act]
    w = [wl.float().requires_grad_() for wl in nets.weights(label, ws, seed)]
    x, up = (t.float() for t in nets.inputs(ws, batch, seed))
    h, zs = x, []
    for wl in w:
        z = h @ wl.T
        z.retain_grad()
        zs.append(z)
        h = f(z)
    (h * up).sum().backward()
    rms = [float(z.grad.pow(2).mean().sqrt()) if z.grad is not None else 0.0 for z in zs]
    return sum(1 for v in rms if v == 0.0 or not math.isfinite(v))


def signal(depth, batch, seed=0):
    ws = nets.alternating(depth)
    cache = {}
    rows = []
    for act, labels in nets.PER_ACT.items():
        for label in labels:
            w = cache.setdefault(label, nets.weights(label, ws, seed))
            st = nets.deep_stats(act, label, ws, batch, seed, w=w)
            for i in range(depth):
                la, a, fa = _val(st["h_std"][i])
                lg, g, fg = _val(st["grad_rms"][i])
                rows.append({"activation": act, "init": label, "layer": i + 1, "width_in": ws[i],
                             "width_out": ws[i + 1], "log10_act_std": la, "act_std": a, "act_at_floor": fa,
                             "act_below_resolution": int(st["h_below_res"][i]),
                             "log10_grad_rms": lg, "grad_rms": g, "grad_at_floor": fg,
                             "saturated": st["saturated"][i]})

    def get(act, label, key, layer):
        return next(r[key] for r in rows if r["activation"] == act and r["init"] == label and r["layer"] == layer)

    he = [r["act_std"] for r in rows if r["activation"] == "relu" and r["init"] == "He"]
    s = {"relu_he_act_std_min": min(he), "relu_he_act_std_max": max(he),
         "relu_small_act_std_last": get("relu", "small uniform ±0.01", "act_std", depth),
         "relu_small_grad_rms_first": get("relu", "small uniform ±0.01", "grad_rms", 1),
         "relu_large_act_std_last": get("relu", "large uniform ±1", "act_std", depth),
         "tanh_large_saturated_last": get("tanh", "large uniform ±1", "saturated", depth),
         "sigmoid_glorot_grad_first": get("sigmoid", "Glorot", "grad_rms", 1),
         "sigmoid_glorot_grad_last": get("sigmoid", "Glorot", "grad_rms", depth),
         "sigmoid_logistic_saturated_last": get("sigmoid", "Xavier logistic", "saturated", depth),
         "tanh_glorot_grad_first": get("tanh", "Glorot", "grad_rms", 1),
         "tanh_glorot_grad_last": get("tanh", "Glorot", "grad_rms", depth),
         "leaky_he_act_std_last": get("leaky_relu", "He", "act_std", depth),
         "leaky_heleaky_act_std_last": get("leaky_relu", "He leaky (a=0.2)", "act_std", depth),
         "float32_lost_layers_relu_small": _float32_losses("relu", "small uniform ±0.01", ws, batch, seed),
         "float32_lost_layers_relu_large": _float32_losses("relu", "large uniform ±1", ws, batch, seed),
         "floor_rows": sum(r["act_at_floor"] + r["grad_at_floor"] for r in rows),
         "below_resolution_rows": sum(r["act_below_resolution"] for r in rows),
         "sigmoid_small_act_std_first": get("sigmoid", "small uniform ±0.01", "act_std", 1),
         "sigmoid_small_resolution_layer": next((r["layer"] for r in rows if r["activation"] == "sigmoid" and r[
             "init"] == "small uniform ±0.01" and r["act_below_resolution"]), 0),
         "sigmoid_logistic_grad_first": get("sigmoid", "Xavier logistic", "grad_rms", 1),
         "sigmoid_logistic_grad_last": get("sigmoid", "Xavier logistic", "grad_rms", depth),
         "leaky_he_over_heleaky_last": get("leaky_relu", "He", "act_std", depth)
         / get("leaky_relu", "He leaky (a=0.2)", "act_std", depth),
         "leaky_he_over_heleaky_theory": (1 + nets.LEAK ** 2) ** (depth / 2),
         "relu_hefanavg_act_std_last": get("relu", "He fan-average", "act_std", depth),
         # the sigmoid's mean of 1/2 gives each unit of a Xavier-logistic layer an input-independent offset
         # (1/2) sum_j W_ij, of std sqrt(n_in Var(W) / 4): for n_in = 256 and for n_in = 64
         "logistic_offset_std_wide": math.sqrt(ws[0] * nets.var_w("Xavier logistic", ws[0], ws[1]) / 4),
         "logistic_offset_std_narrow": math.sqrt(ws[1] * nets.var_w("Xavier logistic", ws[1], ws[0]) / 4)}
    return {"rows": rows, "summary": s, "settings": {"depth": depth, "widths": "256, 64, 256, ... (alternating)",
                                                     "batch": batch, "seed": seed, "leaky_slope": nets.LEAK,
                                                     "small_uniform_r": 0.01, "large_uniform_r": 1.0,
                                                     "schemes": nets.scheme_names(cache)}}


DERIVATION_CASES = [("linear", "Glorot"), ("tanh", "Glorot"), ("sigmoid", "Xavier logistic"), ("relu", "He"),
                    ("leaky_relu", "He leaky (a=0.2)")]


def _log10_mean(logs):
    """log10 of the mean of 10 ** (2 l) over seeds, halved: the RMS over all seeds' samples, in the log domain."""
    t = torch.tensor(logs, dtype=torch.float64) * 2 * math.log(10.0)
    return float((torch.logsumexp(t, 0) - math.log(len(logs))) / (2 * math.log(10.0)))


def derivations(depth, batch, seeds, seed=0):
    """For each (activation, scheme) of DERIVATION_CASES: the derivation's predicted RMS of z_l and dL/dz_l per
    layer, and the measured ones for ``seeds`` weight draws (their min, median, max, and the RMS over all draws,
    which is what the derivation predicts: an expectation over the weights)."""
    ws = nets.alternating(depth)
    rows, s = [], {}
    for act, label in DERIVATION_CASES:
        sts = [nets.deep_stats(act, label, ws, batch, seed + k) for k in range(seeds)]
        pz, pg = nets.predicted(act, label, ws)
        fit = []
        for i in range(depth):
            row = {"activation": act, "init": label, "layer": i + 1, "width_in": ws[i], "width_out": ws[i + 1]}
            for key, name, pred in (("z_rms", "z_rms", pz), ("grad_rms", "grad_rms", pg)):
                v = sorted(st[key][i] for st in sts)
                row.update({f"predicted_log10_{name}": pred[i], f"log10_{name}_all_seeds": _log10_mean(v),
                            f"log10_{name}_min": v[0], f"log10_{name}_median": v[len(v) // 2],
                            f"log10_{name}_max": v[-1]})
                fit.append(row[f"log10_{name}_all_seeds"] - pred[i])
            rows.append(row)
        last, first = rows[-1], rows[-depth]
        s[f"{act}_max_ratio"] = 10.0 ** max(abs(d) for d in fit)  # measured (all seeds) / predicted, or inverse
        s[f"{act}_pred_z_rms_last"] = 10.0 ** last["predicted_log10_z_rms"]
        s[f"{act}_z_rms_last"] = 10.0 ** last["log10_z_rms_all_seeds"]
        s[f"{act}_z_rms_last_min"] = 10.0 ** last["log10_z_rms_min"]
        s[f"{act}_z_rms_last_max"] = 10.0 ** last["log10_z_rms_max"]
        s[f"{act}_pred_grad_rms_first"] = 10.0 ** first["predicted_log10_grad_rms"]
        s[f"{act}_grad_rms_first"] = 10.0 ** first["log10_grad_rms_all_seeds"]
    w, n = ws[0], ws[1]
    s["glorot_pair_factor"] = (w * nets.var_w("Glorot", w, n)) * (n * nets.var_w("Glorot", n, w))
    return {"rows": rows, "summary": s, "settings": {"depth": depth, "widths": "256, 64, 256, ... (alternating)",
                                                     "batch": batch, "seeds": seeds, "leaky_slope": nets.LEAK,
                                                     "schemes": nets.scheme_names(dict.fromkeys(
                                                         label for _, label in DERIVATION_CASES))}}


def scale(depth, batch, n_r, seed=0):
    """Uniform U(-r, r) weights over a range of r, for sigmoid and tanh: how much the gradient grows or shrinks
    from the last layer to the first (its RMS ratio), the last layer's activation std and the fraction of saturated
    units (f'(z) < f'(0) / 10)."""
    ws = nets.alternating(depth)
    rs = [float(v) for v in torch.logspace(-3, 1, n_r, dtype=torch.float64)]
    rows = []
    for act in ("sigmoid", "tanh"):
        for r in rs:
            st = nets.deep_stats(act, ("uniform", {"a": -r, "b": r}), ws, batch, seed)
            lg, g, fg = _val(st["grad_rms"][0])
            la, a, fa = _val(st["h_std"][-1])
            gain = st["grad_rms"][0] - st["grad_rms"][-1]  # log10 of how the gradient grows from layer L to 1
            rows.append({"activation": act, "r": r, "log10_grad_rms_layer1": lg, "grad_rms_layer1": g,
                         "grad_at_floor": fg, "log10_grad_gain": gain, "grad_gain": 10.0 ** gain,
                         "log10_act_std_last": la, "act_std_last": a, "act_at_floor": fa,
                         "act_below_resolution": int(st["h_below_res"][-1]),
                         "saturated": sum(st["saturated"]) / depth})
    best = {act: min((x for x in rows if x["activation"] == act), key=lambda x: abs(x["log10_grad_gain"]))
            for act in ("sigmoid", "tanh")}
    s = {"glorot_r": math.sqrt(6.0 / (ws[0] + ws[1])), "logistic_r": 4 * math.sqrt(6.0 / (ws[0] + ws[1])),
         "r_min": rs[0], "r_max": rs[-1]}
    for act, bound in (("tanh", "glorot_r"), ("sigmoid", "logistic_r")):  # the gain at the bound, log-log interpolated
        mine = [x for x in rows if x["activation"] == act]
        logs = [math.log10(x["r"]) for x in mine]
        s[f"{act}_grad_gain_at_{bound}"] = 10.0 ** float(np.interp(math.log10(s[bound]), logs,
                                                            [x["log10_grad_gain"] for x in mine]))
    for act in ("sigmoid", "tanh"):
        ends = [x for x in rows if x["activation"] == act]
        s[f"{act}_grad_gain_small_r"] = ends[0]["grad_gain"]
        s[f"{act}_grad_gain_large_r"] = ends[-1]["grad_gain"]
        s[f"{act}_saturated_large_r"] = ends[-1]["saturated"]
        s[f"{act}_balanced_r"] = best[act]["r"]
        s[f"{act}_balanced_saturated"] = best[act]["saturated"]
    return {"rows": rows, "summary": s, "settings": {"depth": depth, "widths": "256, 64, 256, ... (alternating)",
                                                     "batch": batch, "seed": seed, "r_values": n_r}}


OTHER_FORMS = ["Glorot", "orthogonal", "identity", "sparse 90%"]


def other_forms(depth, width, batch, seed=0):
    """A square net (width x width, ``depth`` layers): singular values of the end-to-end product of the linear
    net, and the activation std and gradient RMS per layer of the tanh net."""
    ws = [width] * (depth + 1)
    rows, s = [], {}
    for label in OTHER_FORMS:
        sv, res = nets.end_to_end_singular_values(label, width, depth, seed)
        rows += [{"init": label, "quantity": "singular_value", "index": k + 1, "value": v, "log10_value": math.log10(v),
                  "at_floor": 0, "below_resolution": int(v < res)} for k, v in enumerate(sv)]
        s[f"{label}_sv_resolution"] = res
        st = nets.deep_stats("tanh", label, ws, batch, seed)
        for key, q in (("h_std", "act_std"), ("grad_rms", "grad_rms")):
            for i, lg in enumerate(st[key]):
                lv, v, f = _val(lg)
                rows.append({"init": label, "quantity": q, "index": i + 1, "value": v, "log10_value": lv,
                             "at_floor": f, "below_resolution": int(key == "h_std" and st["h_below_res"][i])})
        s[f"{label}_sv_max"], s[f"{label}_sv_min"] = sv[0], sv[-1]
        s[f"{label}_sv_dev_from_1"] = max(abs(v - 1) for v in sv)
        s[f"{label}_sv_below_resolution"] = sum(v < res for v in sv)
        s[f"{label}_tanh_act_std_last"] = 10.0 ** st["h_std"][-1]
    return {"rows": rows, "summary": s, "settings": {"depth": depth, "width": width, "batch": batch, "seed": seed,
                                                     "sparsity": nets.INITS["sparse 90%"][1]["sparsity"],
                                                     "schemes": nets.scheme_names(OTHER_FORMS)}}
