"""Kernels per backend; each computes the stream that docs/stream.md specifies."""
