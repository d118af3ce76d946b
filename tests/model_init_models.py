"""Small models shared by the tests of gpuinit/model_init (tests/test_model_init_*.py)."""
import torch
from torch import nn


def meta(cls, *args, **kwargs):
    """``cls(*args, **kwargs)`` built on the meta device."""
    with torch.device("meta"):
        return cls(*args, **kwargs)


class Tied(nn.Module):
    """An embedding and an output head that share one weight (registered first as ``emb.weight``), and a buffer
    registered under two names."""

    def __init__(self, vocab=11, dim=4):
        super().__init__()
        self.emb = nn.Embedding(vocab, dim)
        self.mid = nn.Linear(dim, dim)
        self.head = nn.Linear(dim, vocab, bias=False)
        self.head.weight = self.emb.weight
        table = torch.arange(dim, dtype=torch.float32)
        self.emb.register_buffer("table", table)
        self.head.register_buffer("table", table)


class Bare(nn.Module):
    """A parameter that only the constructor sets (no reset code), beside a linear layer."""

    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(4, 4)
        self.free = nn.Parameter(torch.zeros(3))
