"""Drop-ins for ``torch.nn``: ``gpuinit.nn.init`` mirrors ``torch.nn.init``."""
from . import init

__all__ = ["init"]
