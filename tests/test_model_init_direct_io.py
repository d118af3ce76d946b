"""gpuinit/model_init/direct_io.py: runs of consecutive bytes land exactly where asked, through O_DIRECT pages and
buffered heads and tails, with several writers meeting inside a page, and without O_DIRECT."""
import os

import numpy as np
import pytest

from gpuinit.model_init import direct_io


def _runs(rng, size, n):
    """``n`` writers' runs: consecutive cuts of [0, size), each cut into pieces of random lengths."""
    cuts = np.sort(rng.choice(np.arange(1, size), n - 1, replace=False)).tolist()
    out = []
    for lo, hi in zip([0, *cuts], [*cuts, size], strict=True):
        pieces, at = [], lo
        while at < hi:
            k = int(min(hi - at, rng.integers(1, 3 * direct_io.PAGE)))
            pieces.append((at, k))
            at += k
        out.append(pieces)
    return out


@pytest.mark.parametrize("direct", [True, False])
@pytest.mark.parametrize("writers", [1, 3])
def test_runs_land_where_asked(tmp_path, monkeypatch, rng, direct, writers):
    monkeypatch.setattr(direct_io, "STAGE", 4 * direct_io.PAGE)  # several direct writes per run
    if not direct:
        monkeypatch.delattr(os, "O_DIRECT")
    for trial in range(40):  # runs whose first pieces end short of a page boundary included
        size = int(rng.integers(writers, 20)) * direct_io.PAGE + int(rng.integers(0, direct_io.PAGE))
        data = rng.integers(0, 256, size, dtype=np.uint8)
        path = tmp_path / f"f{trial}"
        path.write_bytes(b"\xff" * (size + 50))  # a header or a neighbour's bytes after it stay untouched
        ws = [direct_io.Writer(path) for _ in range(writers)]
        for w, pieces in zip(ws, _runs(rng, size, writers), strict=True):
            for at, k in pieces:
                w.write(at, data[at:at + k])
        assert all((w.direct is not None) == direct for w in ws)  # never refused: every direct write aligned
        for w in ws:
            w.close()
        got = np.frombuffer(path.read_bytes(), np.uint8)
        assert np.array_equal(got[:size], data) and (got[size:] == 255).all()


def test_a_gap_starts_a_new_run(tmp_path):
    path = tmp_path / "f"
    path.write_bytes(bytes(3 * direct_io.PAGE))
    w = direct_io.Writer(path)
    w.write(10, b"a" * 5000)
    w.write(6000, b"b" * 100)  # not after the last byte: the first run ends, its tail written
    w.close()
    got = path.read_bytes()
    assert got[10:5010] == b"a" * 5000 and got[6000:6100] == b"b" * 100 and got[5010:6000] == bytes(990)
