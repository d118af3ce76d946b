"""The training experiments of ``gpuinit explore``: small tanh MLPs on two spirals, full-batch Adam, float32.

Every run here is a pure function of its seeds: data and weights are seeded, training is full-batch (no
shuffling), and ``explore.run`` fixes torch's thread count and deterministic algorithms around it.
"""
import math

import torch
import torch.nn.functional as F

from ..api import init_
from .nets import scheme_names

# Training-curve initializers: label -> (scheme, params) for a tanh net.
CURVE_INITS = {
    "small uniform ±0.01": ("uniform", {"a": -0.01, "b": 0.01}),
    "large uniform ±1": ("uniform", {"a": -1.0, "b": 1.0}),
    "Glorot": ("xavier_uniform", {}),
    "LeCun": ("lecun_normal", {}),
    "He": ("kaiming_normal", {"nonlinearity": "relu"}),
    "orthogonal": ("orthogonal", {}),
}
TRIAL_STARTS = [("Glorot", "xavier_uniform"), ("He", "kaiming_normal"), ("same start", "xavier_uniform")]
BATCHED = {"batch_axis": 0, "in_axis": 2, "out_axis": 1}  # (copies, out, in): fans from the last two axes


def spirals(n, seed=0, noise=0.1):
    """Two interleaved spirals in the unit disc (1.5 turns each): inputs (n, 2) and labels (n,) in {0, 1}."""
    g = torch.Generator().manual_seed(seed)
    t = torch.sqrt(torch.rand(n // 2, generator=g)) * 3 * math.pi
    arm = torch.stack([t * torch.cos(t), t * torch.sin(t)], 1) / (3 * math.pi)
    x = torch.cat([arm, -arm]) + noise * torch.randn(2 * (n // 2), 2, generator=g) / 3
    y = torch.cat([torch.zeros(n // 2), torch.ones(n // 2)])
    return x, y


def adam(params, lr, betas=(0.9, 0.999), eps=1e-8):
    """Adam (Kingma & Ba) with torch.optim.Adam's defaults, written out in the same operations as its CPU
    implementation (the values are identical): a function ``step()`` that applies one update from the gradients.
    torch.optim's constructor imports torch._dynamo (about 2.5 s of start-up)."""
    (b1, b2), state, t = betas, [(torch.zeros_like(p), torch.zeros_like(p)) for p in params], [0]

    @torch.no_grad()
    def step():
        t[0] += 1
        for p, (m, v) in zip(params, state, strict=True):
            m.lerp_(p.grad, 1 - b1)
            v.mul_(b2).addcmul_(p.grad, p.grad, value=1 - b2)
            denom = (v.sqrt() / (1 - b2 ** t[0]) ** 0.5).add_(eps)
            p.addcdiv_(m, denom, value=-(lr / (1 - b1 ** t[0])))
            p.grad = None
    return step


def _train(params, forward, y, steps, lr):
    """Full-batch Adam on the sum of the copies' mean losses (Adam is elementwise: each copy trains on its own).
    Returns the per-step losses, (steps, copies)."""
    step = adam(params, lr)
    hist = []
    for _ in range(steps):
        logits = forward()
        losses = F.binary_cross_entropy_with_logits(logits, y.expand_as(logits), reduction="none").mean(-1)
        losses.sum().backward()
        step()
        hist.append(losses.detach())
    return torch.stack(hist)


def symmetry(steps=300, hidden=16, seed=0, n=400, lr=0.05):
    """A 2-16-1 tanh MLP from a constant start (all weights 0.5) and from a Glorot start, trained side by side.
    Rows per step: the loss and the spread of the hidden units' incoming weights (max over inputs of their std
    across units) before that step."""
    x, y = spirals(n, seed)
    starts = [("constant 0.5", "constant", {"value": 0.5}), ("Glorot", "xavier_uniform", {})]
    w1, w2 = torch.empty(2, hidden, 2), torch.empty(2, 1, hidden)
    for c, (_, scheme, params) in enumerate(starts):
        for i, w in enumerate((w1[c], w2[c])):
            init_(w, scheme, seed=seed, stream=i, **params)
    b1, b2 = torch.zeros(2, 1, hidden), torch.zeros(2, 1, 1)
    ps = [p.requires_grad_() for p in (w1, b1, w2, b2)]
    spread = []

    def forward():
        spread.append(w1.detach().std(dim=1).amax(1))
        return (torch.tanh(x @ w1.transpose(1, 2) + b1) @ w2.transpose(1, 2) + b2).squeeze(2)  # (2, n)

    hist = _train(ps, forward, y, steps, lr)
    rows = [{"start": label, "step": t, "loss": float(hist[t, c]), "spread": float(spread[t][c])}
            for c, (label, *_) in enumerate(starts) for t in range(steps)]
    return {"rows": rows, "w1": {label: w1[c].detach().clone() for c, (label, *_) in enumerate(starts)},
            "settings": {"net": f"2-{hidden}-1 tanh", "points": n, "steps": steps, "lr": lr, "seed": seed,
                         "constant": 0.5,
                         "schemes": scheme_names([x[0] for x in starts], {x[0]: x[1:] for x in starts})}}


def _two_layer(x, w1, b1, w2, b2):
    return lambda: (torch.tanh(x @ w1.transpose(1, 2) + b1) @ w2.transpose(1, 2) + b2).squeeze(2)


def trials(n_trials=24, steps=200, hidden=32, seed=0, n=200, lr=0.05):
    """Final losses of ``n_trials`` 2-32-1 tanh MLPs trained side by side; each initializer fills all trials'
    weights in one batched call; "same start" gives every trial the same (Glorot) weights."""
    x, y = spirals(n, seed)
    rows = []
    for label, scheme in TRIAL_STARTS:
        w1, w2 = torch.empty(n_trials, hidden, 2), torch.empty(n_trials, 1, hidden)
        for i, w in enumerate((w1, w2)):
            if label == "same start":
                init_(w[0], scheme, seed=seed, stream=i)
                w.copy_(w[:1].expand_as(w))
            else:
                init_(w, scheme, seed=seed, stream=i, **BATCHED)
        b1, b2 = torch.zeros(n_trials, 1, hidden), torch.zeros(n_trials, 1, 1)
        ps = [p.requires_grad_() for p in (w1, b1, w2, b2)]
        hist = _train(ps, _two_layer(x, *ps), y, steps, lr)
        rows += [{"start": label, "trial": t, "final_loss": float(hist[-1, t])} for t in range(n_trials)]
    return {"rows": rows, "settings": {"net": f"2-{hidden}-1 tanh", "points": n, "steps": steps, "lr": lr,
                                       "trials": n_trials, "seed": seed, "schemes": dict(TRIAL_STARTS)}}


def curves(steps=300, seeds=5, hidden=32, n=200, lr=0.01, data_seed=0):
    """Training losses of a 2-32-32-1 tanh MLP per initializer and weight seed (0 .. seeds-1), all runs side by
    side in one batched model; data fixed (seed ``data_seed``). Also the per-run statistics that explain the
    ranking: the first layer's weight RMS at the start and the end, the fraction of saturated hidden units
    (|h| > 0.99) at the start."""
    x, y = spirals(n, data_seed)
    labels = list(CURVE_INITS)
    runs = [(lab, s) for lab in labels for s in range(seeds)]
    shapes = [(hidden, 2), (hidden, hidden), (1, hidden)]
    ws = [torch.empty(len(runs), *s) for s in shapes]
    for r, (lab, s) in enumerate(runs):
        scheme, params = CURVE_INITS[lab]
        for i, w in enumerate(ws):
            init_(w[r], scheme, seed=s, stream=i, **params)
    bs = [torch.zeros(len(runs), 1, s[0]) for s in shapes]

    def hidden_layers():
        h1 = torch.tanh(x @ ws[0].transpose(1, 2) + bs[0])
        return h1, torch.tanh(h1 @ ws[1].transpose(1, 2) + bs[1])

    with torch.no_grad():
        h1, h2 = hidden_layers()
        sat = ((h1.abs() > 0.99).float().mean((1, 2)) + (h2.abs() > 0.99).float().mean((1, 2))) / 2
        rms0 = ws[0].pow(2).mean((1, 2)).sqrt()
    ps = [p.requires_grad_() for p in ws + bs]
    hist = _train(ps, lambda: (hidden_layers()[1] @ ws[2].transpose(1, 2) + bs[2]).squeeze(2), y, steps, lr)
    rms1 = ws[0].detach().pow(2).mean((1, 2)).sqrt()
    rows = [{"init": lab, "seed": s, "step": t, "loss": float(hist[t, r])}
            for r, (lab, s) in enumerate(runs) for t in range(steps)]
    per_run = [{"init": lab, "seed": s, "w1_rms_start": float(rms0[r]), "w1_rms_end": float(rms1[r]),
                "saturated_start": float(sat[r]), "loss_start": float(hist[0, r]), "loss_end": float(hist[-1, r])}
               for r, (lab, s) in enumerate(runs)]
    wl, bl = torch.zeros(1, 1, 2, requires_grad=True), torch.zeros(1, 1, 1, requires_grad=True)
    linear = _train([wl, bl], lambda: (x @ wl.transpose(1, 2) + bl).squeeze(2), y, steps, 0.05)
    return {"rows": rows, "per_run": per_run, "linear_model_loss": float(linear[-1, 0]),
            "settings": {"net": f"2-{hidden}-{hidden}-1 tanh", "points": n, "steps": steps, "lr": lr,
                         "seeds": seeds, "data_seed": data_seed, "small_uniform_r": 0.01, "large_uniform_r": 1.0,
                         "linear_model_lr": 0.05, "schemes": scheme_names(CURVE_INITS, CURVE_INITS)}}
