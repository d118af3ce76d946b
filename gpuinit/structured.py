"""Host-side math of the structured schemes, written once for NumPy and torch (``xp`` is either)."""
import math

import numpy as np


def orthogonalize(g, p, xp):
    """The orthogonal tensor built from ``g``, a normal draw of the full logical tensor.

    Each batch copy is seen as a matrix (out, rest): the out axis against all other non-batch axes
    flattened, orthonormalized and multiplied by the gain.
    """
    batch = tuple(p["batch_axis"])
    nb = len(batch)
    out_pos = nb + sum(1 for a in range(g.ndim) if a not in batch and a < p["out_axis"])
    moved = xp.moveaxis(xp.moveaxis(g, batch, tuple(range(nb))), out_pos, nb)
    shape = tuple(moved.shape)
    mats = moved.reshape((math.prod(shape[:nb]), shape[nb], -1))
    for i in range(mats.shape[0]):
        mats[i] = orthonormalize(mats[i], xp)
    mats *= p["gain"]
    return xp.moveaxis(xp.moveaxis(mats.reshape(shape), nb, out_pos), tuple(range(nb)), batch)


def orthonormalize(m, xp):
    """Q of the QR of ``m`` (of m.T when it is wide), columns signed by diag(R), as torch does."""
    wide = m.shape[0] < m.shape[1]
    q, r = xp.linalg.qr(m.T if wide else m)
    q = xp.where(xp.diagonal(r)[None, :] < 0, -q, q)
    return q.T if wide else q


def dirac_points(full_shape, offsets, shape, groups):
    """Local indices (one int array per dim) of the ones of dirac_(groups) that fall in this block."""
    per_group = full_shape[0] // groups
    d = np.arange(min(per_group, full_shape[1]))
    rows = (np.arange(groups)[:, None] * per_group + d).reshape(-1)
    idx = [rows, np.tile(d, groups)] + [np.full(rows.size, n // 2) for n in full_shape[2:]]
    local = [i - o for i, o in zip(idx, offsets)]
    inside = np.all([(li >= 0) & (li < n) for li, n in zip(local, shape)], axis=0)
    return tuple(li[inside] for li in local)


def sparse_keys(full_shape, offsets, local_cols, sparsity):
    """What every backend draws for sparse(sparsity) on the block at ``offsets`` of a (rows, cols) tensor:
    (zeros per column, key block shape, key block offsets, base index). The keys of column j are the
    words of indices rows * cols + i * cols + j (the stream past the tensor), so the block of keys is
    (rows, local_cols) at (0, offsets[1]) of a (rows, cols) tensor whose indices start at rows * cols;
    in each column the rows with the smallest (key, row) are zero, whatever the shard."""
    rows, cols = full_shape
    return math.ceil(sparsity * rows), (rows, local_cols), (0, offsets[1]), rows * cols
