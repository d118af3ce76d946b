"""The tutorial's experiments with tiny models, as figures and a report (``gpuinit explore --out DIR``).

1. Symmetry: hidden units that start equal stay equal under gradient descent.
2. Vanishing and exploding signals through a deep MLP, by activation and initializer.
3. Training curves on two spirals, by initializer.
4. Different networks: the spread of the final loss over many trials, initialized in one batched call.

Everything runs on the CPU in float32 in well under a minute; ``quick=True`` shrinks the runs for tests.
"""
import math
from pathlib import Path

import numpy as np

from .api import init_

# The initializers of the tutorial, as (label, scheme, params) for a weight in torch's (out, in) layout.
SCHEMES = [("small uniform", "uniform", {"a": -0.01, "b": 0.01}), ("large uniform", "uniform", {"a": -1.0, "b": 1.0}),
           ("Glorot", "glorot_uniform", {}), ("LeCun", "lecun_normal", {}), ("He", "he_normal", {}),
           ("orthogonal", "orthogonal", {})]
ACTIVATIONS = ["sigmoid", "tanh", "relu", "leaky_relu"]


def spirals(n, seed=0, noise=0.1):
    """Two interleaved spirals in the plane: inputs (n, 2) and labels (n,) in {0, 1}."""
    import torch

    g = torch.Generator().manual_seed(seed)
    t = torch.sqrt(torch.rand(n // 2, generator=g)) * 3 * math.pi
    arm = torch.stack([t * torch.cos(t), t * torch.sin(t)], 1) / (3 * math.pi)
    x = torch.cat([arm, -arm]) + noise * torch.randn(2 * (n // 2), 2, generator=g) / 3
    y = torch.cat([torch.zeros(n // 2), torch.ones(n // 2)])
    return x, y


def _act(name):
    import torch.nn.functional as F

    return {"sigmoid": F.sigmoid, "tanh": F.tanh, "relu": F.relu, "leaky_relu": F.leaky_relu}[name]


def symmetry(steps=300, hidden=16, seed=0):
    """A 2-16-1 tanh MLP trained (Adam) on two spirals from a constant start and from a random (Glorot) start.

    Returns, for each start, the spread of the hidden units' incoming weights (max over inputs of their
    std across units) and the loss, per step."""
    import torch

    x, y = spirals(400, seed)
    out = {}
    for label, scheme, params in [("constant 0.5", "constant", {"value": 0.5}), ("Glorot", "glorot_uniform", {})]:
        w1, w2 = torch.empty(hidden, 2), torch.empty(1, hidden)
        for i, w in enumerate((w1, w2)):
            init_(w, scheme, seed=seed, stream=i, **params)
        b1, b2 = torch.zeros(hidden), torch.zeros(1)
        ws = [w.requires_grad_() for w in (w1, b1, w2, b2)]
        opt = torch.optim.Adam(ws, lr=0.05)  # elementwise: equal gradients give equal updates
        spread, losses = [], []
        for _ in range(steps):
            h = torch.tanh(x @ w1.T + b1)
            loss = torch.nn.functional.binary_cross_entropy_with_logits((h @ w2.T + b2).squeeze(1), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            spread.append(w1.detach().std(dim=0).max().item())
            losses.append(loss.item())
        out[label] = {"spread": spread, "loss": losses, "w1": w1.detach().clone()}
    return out


def signal(depth=32, width=256, batch=512, seed=0):
    """Std of the activations (forward) and RMS of the gradients with respect to the pre-activations
    (backward, of the sum of the outputs) at each layer of a deep MLP, for every activation x initializer.
    Returns {(activation, label): {"act": [...], "grad": [...]}}."""
    import torch

    x = torch.randn(batch, width, generator=torch.Generator().manual_seed(seed))
    out = {}
    for act_name in ACTIVATIONS:
        act = _act(act_name)
        for label, scheme, params in SCHEMES:
            weights = [init_(torch.empty(width, width), scheme, seed=seed, stream=i, **params).requires_grad_()
                       for i in range(depth)]
            h, acts, pre = x, [], []
            for w in weights:
                z = h @ w.T
                z.retain_grad()
                pre.append(z)
                h = act(z)
                acts.append(h.detach().std().item())
            h.sum().backward()
            grads = [z.grad.pow(2).mean().sqrt().item() for z in pre]  # RMS of dL/dz
            out[(act_name, label)] = {"act": acts, "grad": grads}
    return out


def curves(steps=500, seed=0):
    """Training loss of a 2-64-64-1 tanh MLP on two spirals (Adam), per initializer."""
    import torch

    x, y = spirals(600, seed)
    out = {}
    for label, scheme, params in SCHEMES:
        sizes = [(64, 2), (64, 64), (1, 64)]
        ws = [init_(torch.empty(s), scheme, seed=seed, stream=i, **params).requires_grad_() for i, s in
              enumerate(sizes)]
        bs = [torch.zeros(s[0], requires_grad=True) for s in sizes]
        opt = torch.optim.Adam(ws + bs, lr=1e-2)
        losses = []
        for _ in range(steps):
            h = x
            for i, (w, b) in enumerate(zip(ws, bs)):
                h = h @ w.T + b
                if i < 2:
                    h = torch.tanh(h)
            loss = torch.nn.functional.binary_cross_entropy_with_logits(h.squeeze(1), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
        out[label] = losses
    return out


def trials(n_trials=64, steps=300, hidden=32, seed=0):
    """The final loss of ``n_trials`` 2-32-1 tanh MLPs trained side by side on two spirals.

    Each initializer fills all trials' weights in one batched call (batch axis 0: independent copies);
    "same start" gives every trial the same weights (the tutorial's symmetric trials)."""
    import torch

    x, y = spirals(400, seed)
    out = {}
    for label, scheme, params in SCHEMES[2:5] + [("same start", "glorot_uniform", {})]:
        w1, w2 = torch.empty(n_trials, hidden, 2), torch.empty(n_trials, 1, hidden)
        for i, w in enumerate((w1, w2)):
            if label == "same start":
                init_(w[0], scheme, seed=seed, stream=i, **params)
                w.copy_(w[:1].expand_as(w))
            else:
                init_(w, scheme, seed=seed, stream=i, batch_axis=0, in_axis=2, out_axis=1, **params)
        b1, b2 = torch.zeros(n_trials, 1, hidden), torch.zeros(n_trials, 1, 1)
        ws = [w.requires_grad_() for w in (w1, b1, w2, b2)]
        opt = torch.optim.Adam(ws, lr=0.05)  # elementwise, so each trial trains on its own
        for _ in range(steps):
            h = torch.tanh(x @ w1.transpose(1, 2) + b1)  # (trials, n, hidden)
            logits = (h @ w2.transpose(1, 2) + b2).squeeze(2)
            losses = torch.nn.functional.binary_cross_entropy_with_logits(logits, y.expand_as(logits),
                                                                          reduction="none").mean(1)
            opt.zero_grad()
            losses.sum().backward()
            opt.step()
        out[label] = losses.detach().numpy()
    return out


# ---- figures and report -----------------------------------------------------------------------------

def _plt():
    try:
        import matplotlib
    except ImportError:
        raise RuntimeError("gpuinit explore draws with matplotlib: pip install 'gpuinit[plot]'") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def run(out_dir, quick=False):
    """Run the four experiments, write their PNG figures and ``report.md`` into ``out_dir``; return the
    numbers behind them."""
    plt = _plt()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    s = 0.3 if quick else 1.0
    res = {"symmetry": symmetry(steps=int(300 * s)), "signal": signal(depth=32, width=128 if quick else 256),
           "curves": curves(steps=int(500 * s)), "trials": trials(n_trials=32 if quick else 64, steps=int(300 * s))}

    fig, ax = plt.subplots(1, 2, figsize=(10, 3.5))
    for label, r in res["symmetry"].items():
        ax[0].plot(np.maximum(r["spread"], 1e-12), label=label)
        ax[1].plot(r["loss"], label=label)
    ax[0].set(yscale="log", xlabel="step", ylabel="spread of hidden weights (0 drawn at 1e-12)",
              title="units that start equal stay equal")
    ax[1].set(xlabel="step", ylabel="loss", title="training loss")
    ax[0].legend()
    _save(fig, out / "symmetry.png")

    fig, ax = plt.subplots(2, 4, figsize=(16, 7), sharex=True)
    for j, act in enumerate(ACTIVATIONS):
        for label, *_ in SCHEMES:
            r = res["signal"][(act, label)]
            ax[0, j].plot(np.maximum(r["act"], 1e-30), label=label)
            ax[1, j].plot(np.maximum(r["grad"], 1e-30), label=label)
        ax[0, j].set(yscale="log", title=act, ylabel="activation std" if j == 0 else None)
        ax[1, j].set(yscale="log", xlabel="layer", ylabel="gradient RMS" if j == 0 else None)
    ax[0, 0].legend(fontsize=8)
    _save(fig, out / "signal.png")

    fig, ax = plt.subplots(figsize=(6, 4))
    for label, losses in res["curves"].items():
        ax.plot(losses, label=label)
    ax.set(yscale="log", xlabel="step", ylabel="loss", title="two spirals, 2-64-64-1 tanh MLP, Adam")
    ax.legend()
    _save(fig, out / "curves.png")

    fig, ax = plt.subplots(figsize=(6, 4))
    labels = list(res["trials"])
    ax.boxplot([res["trials"][k] for k in labels])
    ax.set_xticks(range(1, len(labels) + 1), labels)
    ax.set(ylabel="final loss", title=f"{len(next(iter(res['trials'].values())))} trials per initializer")
    _save(fig, out / "trials.png")

    (out / "report.md").write_text(_report(res))
    return res


def _save(fig, path):
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    fig.clear()


def _report(res):
    sym = res["symmetry"]
    relu_he, relu_small = res["signal"][("relu", "He")]["act"], res["signal"][("relu", "small uniform")]["act"]
    tanh_large = res["signal"][("tanh", "large uniform")]["act"]
    final = {k: v[-1] for k, v in res["curves"].items()}
    spread = {k: (float(np.std(v)), float(np.mean(v))) for k, v in res["trials"].items()}
    rows = "\n".join(f"| {k} | {m:.4f} | {sd:.4f} |" for k, (sd, m) in spread.items())
    return f"""# Why initialization matters: the tutorial's experiments

Every weight below was written by gpuinit (seeded, so the figures are reproducible).

## 1. Breaking the symmetry

![symmetry](symmetry.png)

A 2-16-1 tanh network trained on two spirals with Adam. Started from a constant (every weight 0.5, biases zero),
all hidden units compute the same function and receive the same gradient, so they stay identical:
the largest spread of their incoming weights after {len(sym["constant 0.5"]["spread"])} steps is
{sym["constant 0.5"]["spread"][-1]:.1e}, and the loss stalls at {sym["constant 0.5"]["loss"][-1]:.3f}.
From a random (Glorot) start the units differ ({sym["Glorot"]["spread"][-1]:.3f}) and the loss reaches
{sym["Glorot"]["loss"][-1]:.3f}.

## 2. Vanishing and exploding signals

![signal](signal.png)

The std of the activations (top) and the RMS of the gradients (bottom) through {len(relu_he)} layers. With ReLU, He's
initialization keeps the activation std between {min(relu_he):.2f} and {max(relu_he):.2f} over depth,
while a small uniform (±0.01) collapses it to {relu_small[-1]:.1e} by the last layer. A large uniform (±1)
saturates tanh (activation std {tanh_large[-1]:.2f}, near the ±1 of a saturated unit), Glorot and LeCun
keep tanh's signal alive, and plain orthogonal matrices preserve norms for linear and tanh layers but
lose half the variance at each ReLU.

## 3. Training curves

![curves](curves.png)

A 2-64-64-1 tanh network on two spirals, by initializer. Final losses:
{", ".join(f"{k} {v:.3f}" for k, v in final.items())}.

## 4. Different networks

![trials](trials.png)

The tutorial's trials: the same network trained many times. Each initializer filled all trials' weights
in a single batched call (batch axis 0: independent copies, fans from the other axes). With every trial
started from the same weights, all trials end at the same loss (spread {spread["same start"][0]:.1e}):
they explore nothing. Random starts give a spread of final losses:

| start | mean final loss | std over trials |
|---|---|---|
{rows}
"""
