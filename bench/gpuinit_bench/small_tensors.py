"""The many-small-tensors model of bench/gpu.py's small_tensors case and of bench/host.py: a transformer's parameter
list, per block two LayerNorms (1-D weight and bias) and four Linears with biases (qkv, out, up, down), 12 tensors
a block; and torch's own init of it, every module's ``reset_parameters``."""
import torch
from torch import nn


def small_model(width, layers):
    d = width
    return nn.ModuleList(nn.ModuleList([nn.LayerNorm(d), nn.Linear(d, 3 * d), nn.Linear(d, d), nn.LayerNorm(d),
                                        nn.Linear(d, 4 * d), nn.Linear(4 * d, d)]) for _ in range(layers))


def reset_all(model):
    with torch.no_grad():
        for m in model.modules():
            if hasattr(m, "reset_parameters"):
                m.reset_parameters()
    return model
