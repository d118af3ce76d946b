"""Signal statistics of deep MLPs for ``gpuinit explore``: exact float64 forward passes and a log-domain backward pass.

Nothing here under- or overflows: the forward pass runs in float64 (its values stay within 1e+-100 in every
experiment, far inside float64's 1e+-308) and every statistic is a log10 computed with logsumexp of 2 log|x|
(no square is ever formed); the backward pass rescales the gradient to RMS 1 after each layer and carries the
scale as a log10, so gradients as small as 1e-200 or as large as 1e+200 are exact. The one floor left is an
all-zero tensor (log10 = -inf): such a value is returned as ``None`` and the caller marks it.
"""
import math

import torch
import torch.nn.functional as F

from ..api import init_

LEAK = 0.2  # the negative slope of every leaky ReLU here (LeakyReLU(0.2)), so that He's leaky form differs from He's
LN10 = math.log(10.0)
RESOLUTION = math.log10(64 * torch.finfo(torch.float64).eps)  # below 64 eps RMS(h), a std is rounding noise

# label -> (scheme, params): the initializers compared, by the names gpuinit takes.
INITS = {
    "small uniform ±0.01": ("uniform", {"a": -0.01, "b": 0.01}),
    "large uniform ±1": ("uniform", {"a": -1.0, "b": 1.0}),
    "Glorot": ("xavier_normal", {}),
    "Xavier logistic": ("xavier_logistic_normal", {}),
    "LeCun": ("lecun_normal", {}),
    "He": ("kaiming_normal", {"nonlinearity": "relu"}),
    "He leaky (a=0.2)": ("he_leaky_normal", {"negative_slope": LEAK}),
    "He fan-average": ("he_fan_avg_normal", {}),
    "orthogonal": ("orthogonal", {}),
    "identity": ("eye", {}),
    "sparse 90%": ("sparse", {"sparsity": 0.9}),  # std set per width so that the variance is 1 / fan_in
}
# Per activation: the schemes the tutorial and the library offer for it, beside a too-small and a too-large uniform.
PER_ACT = {
    "sigmoid": ["small uniform ±0.01", "large uniform ±1", "Glorot", "Xavier logistic", "LeCun", "orthogonal"],
    "tanh": ["small uniform ±0.01", "large uniform ±1", "Glorot", "LeCun", "He", "orthogonal"],
    "relu": ["small uniform ±0.01", "large uniform ±1", "Glorot", "LeCun", "He", "He fan-average", "orthogonal"],
    "leaky_relu": ["small uniform ±0.01", "large uniform ±1", "Glorot", "He", "He leaky (a=0.2)", "orthogonal"],
}


def scheme_names(labels, table=None):
    """{label: the gpuinit call it stands for}, e.g. "Glorot" -> "xavier_normal", for a figure's settings."""
    table = INITS if table is None else table

    def call(scheme, params):
        args = ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v!r}" for k, v in params.items())
        return f"{scheme}({args})" if args else scheme

    return {label: call(*table[label]) for label in labels}


def _dtanh(z):
    e = torch.exp(-2 * z.abs())  # 1 - tanh(z)^2 without cancellation: 4 e^{-2|z|} / (1 + e^{-2|z|})^2
    return 4 * e / (1 + e) ** 2


ACTS = {  # name -> (f, f')
    "linear": (lambda z: z, torch.ones_like),
    "sigmoid": (torch.sigmoid, lambda z: torch.sigmoid(z) * torch.sigmoid(-z)),
    "tanh": (torch.tanh, _dtanh),
    "relu": (F.relu, lambda z: (z > 0).to(z.dtype)),
    "leaky_relu": (lambda z: F.leaky_relu(z, LEAK), lambda z: torch.where(z > 0, 1.0, LEAK).to(z.dtype)),
}


def alternating(depth, wide=256, narrow=64):
    """Widths wide, narrow, wide, ... (depth + 1 of them): fan_in != fan_out in every layer."""
    return [wide if i % 2 == 0 else narrow for i in range(depth + 1)]


def log10_rms(x):
    """log10 sqrt(mean(x^2)) via logsumexp(2 log|x|); None when every entry is 0 (the only floor)."""
    x = x.reshape(-1)
    v = float((torch.logsumexp(2 * torch.log(x.abs()), 0) - math.log(x.numel())) / (2 * LN10))
    return v if math.isfinite(v) else None


def weights(label, ws, seed, dtype=torch.float64):
    """The layers' weights (out, in) for widths ``ws`` (``label`` a key of INITS or a (scheme, params) pair);
    layers of one shape are filled in one batched call (batch axis 0: independent copies) where the scheme
    allows it, else one call per layer (stream = layer)."""
    scheme, params = INITS[label] if isinstance(label, str) else label
    n = len(ws) - 1
    if scheme == "sparse":
        rows = ws[1]  # nonzero fraction k / rows per column; std so that the variance is 1 / fan_in
        k = rows - math.ceil(params["sparsity"] * rows)
        params = {**params, "std": math.sqrt(rows / (k * ws[0]))}
    if scheme in ("sparse", "eye"):
        return [init_(torch.empty(ws[i + 1], ws[i], dtype=dtype), scheme, seed=seed, stream=i, **params)
                for i in range(n)]
    out = [None] * n
    for parity in (0, 1):
        idx = list(range(parity, n, 2))
        if idx:
            block = torch.empty(len(idx), ws[parity + 1], ws[parity], dtype=dtype)
            init_(block, scheme, seed=seed, stream=parity, batch_axis=0, in_axis=2, out_axis=1, **params)
            for k, i in enumerate(idx):
                out[i] = block[k]
    return out


def inputs(ws, batch, seed):
    """Input x ~ N(0, 1) (batch, ws[0]) and the upstream gradient dL/dh_L ~ N(0, 1) (batch, ws[-1]), float64."""
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(batch, ws[0], generator=g, dtype=torch.float64),
            torch.randn(batch, ws[-1], generator=g, dtype=torch.float64))


def deep_stats(act, label, ws, batch, seed=0, w=None):
    """Per layer l (1-based): log10 RMS of the pre-activation z_l; log10 std of the activation h_l over the inputs
    (each unit's std over the batch, RMS over units: the signal the layer passes on, not the spread of the
    units' fixed offsets); log10 RMS of the gradient dL/dz_l for L = sum(h_L * u) with u ~ N(0, 1); and the
    fraction of saturated units (f'(z) < f'(0) / 10). Values are log10s; None marks an all-zero tensor.
    ``h_below_res[l]`` is True where the std is below float64's resolution of h_l (RESOLUTION times RMS(h_l):
    a sigmoid's variation around its mean of 1/2 is lost to rounding there); h_std then holds that bound."""
    f, df = ACTS[act]
    w = weights(label, ws, seed) if w is None else w
    x, up = inputs(ws, batch, seed)
    h, zs, z_rms, h_std, h_res, sat = x, [], [], [], [], []
    d0 = float(df(torch.zeros(1, dtype=torch.float64)))
    for wl in w:
        z = h @ wl.T
        h = f(z)
        zs.append(z)
        z_rms.append(log10_rms(z))
        std, size = log10_rms(h - h.mean(0)), log10_rms(h)
        below = size is not None and (std is None or std < size + RESOLUTION)
        h_std.append(size + RESOLUTION if below else std)
        h_res.append(below)
        sat.append(float((df(z) < d0 / 10).double().mean()))
    grad, scale, gh = [None] * len(w), 0.0, up  # gh * 10**scale is dL/dh; gh is kept at RMS 1
    for i in reversed(range(len(w))):
        gz = gh * df(zs[i])
        r = log10_rms(gz)
        if r is None:
            break  # every gradient below is exactly 0: left as None (marked by the caller)
        grad[i] = scale + r
        if i:
            gh = gz @ w[i]
            n = log10_rms(gh)
            if n is None:
                break
            gh, scale = gh / 10.0 ** n, scale + n
    return {"z_rms": z_rms, "h_std": h_std, "h_below_res": h_res, "grad_rms": grad, "saturated": sat}


def var_w(label, fan_in, fan_out):
    """The weight variance each formula prescribes (REFERENCE.md section 1), computed here independently of gpuinit."""
    return {"Glorot": 2.0 / (fan_in + fan_out), "He": 2.0 / fan_in, "LeCun": 1.0 / fan_in,
            "He leaky (a=0.2)": 2.0 / ((1 + LEAK ** 2) * fan_in), "He fan-average": 4.0 / (fan_in + fan_out),
            "Xavier logistic": 32.0 / (fan_in + fan_out)}[label]


# E f(z)^2 / E z^2 = E f'(z)^2 as each derivation assumes it; for the sigmoid, the logistic derivation's
# linearization f(z) ~ z / 4 (its mean of 1/2 left out)
GAIN = {"linear": 1.0, "tanh": 1.0, "relu": 0.5, "leaky_relu": (1 + LEAK ** 2) / 2, "sigmoid": 1 / 16}


def predicted(act, label, ws):
    """The derivations' per-layer predictions (log10 RMS of z_l and of dL/dz_l): Var z_l = n_in Var(W) E f(z_{l-1})^2,
    Var g_l = E f'(z_l)^2 n_out(l+1) Var(W_{l+1}) Var g_{l+1}; Glorot assumes f linear (tanh near 0), He takes
    E f^2 = Var z / 2 for ReLU and (1 + a^2) / 2 for a leaky ReLU."""
    n, k = len(ws) - 1, GAIN[act]
    v = [var_w(label, ws[i], ws[i + 1]) for i in range(n)]
    qz, q = [], 1.0  # E x^2 = 1
    for i in range(n):
        q = ws[i] * v[i] * q
        qz.append(q)
        q = k * q
    qg = [0.0] * n
    qg[-1] = k  # E u^2 = 1
    for i in reversed(range(n - 1)):
        qg[i] = k * ws[i + 2] * v[i + 1] * qg[i + 1]
    return [0.5 * math.log10(a) for a in qz], [0.5 * math.log10(a) for a in qg]


def end_to_end_singular_values(label, width, depth, seed=0):
    """Singular values of the product W_L ... W_1 of a deep linear net (float64), largest first, and the float64
    resolution below which they are rounding noise (n eps times the largest)."""
    w = weights(label, [width] * (depth + 1), seed)
    m = torch.eye(width, dtype=torch.float64)
    for wl in w:
        m = wl @ m
    s = torch.linalg.svdvals(m)
    return s.tolist(), float(s[0]) * width * torch.finfo(torch.float64).eps
