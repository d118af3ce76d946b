"""The host build of kernels/cuda/gpuinit_stream.cuh returns the NumPy reference's bits, from the package's build
for this CPU's x86-64 level, or one compiled here where the package has none (with a warning)."""
import ctypes
import logging
import platform
from pathlib import Path

import numpy as np
import pytest
from conftest import fresh_seed
from gpuinit.kernels import numpy_stream as ks
from helpers import DTYPES, as_f64, empty

import gpuinit
from gpuinit import draws
from gpuinit.backends import cpu_kernel

lib = cpu_kernel.load()
pytestmark = pytest.mark.skipif(lib is None, reason=f"no host kernel: {cpu_kernel.why_not()}")

DRAWS = [draws.uniform(-0.3, 0.7), draws.uniform(0.0, 1.0), draws.normal(0.1, 2.0), draws.normal(0.0, 1.0),
         draws.trunc_normal(0.0, 1.0, -2.0, 2.0), draws.trunc_normal(0.5, 2.0, 6.0, 30.0),
         draws.trunc_normal(0.0, 1.0, -1e9, 0.0), draws.trunc_normal(1.0, 0.1, 0.0, 2.0),
         draws.trunc_normal(0.0, 1.0, -9.5, -5.0)]


@pytest.mark.parametrize("draw", DRAWS, ids=lambda d: f"{d.kind}")
def test_values_bit_for_bit(draw, rng):
    for _ in range(4):
        seed, stream = fresh_seed(rng), fresh_seed(rng)
        starts = np.concatenate([[0, 2**32 - 3, 2**62], rng.integers(0, 2**61, 5)]).astype(np.uint64)
        length = int(rng.integers(1, 3000))
        got = cpu_kernel.draw_values(lib, draw, starts, length, seed, stream)
        ref = ks.draw_values(draw, starts, length, seed, stream)
        assert np.array_equal(got.view(np.uint32), ref.view(np.uint32))


def half_bits(lib, values):
    """The host C library's float32 -> float16 bits (gi_cpu_half_bits)."""
    values = np.ascontiguousarray(values, dtype=np.float32)
    out = np.empty(values.shape, np.uint16)
    lib.gi_cpu_half_bits(values.ctypes.data, values.size, out.ctypes.data)
    return out


def element_words(lib, start, n, seed, stream):
    """The host C library's raw words of elements start .. start + n (gi_cpu_words)."""
    out = np.empty(n, np.uint32)
    lib.gi_cpu_words(start, n, seed, stream, out.ctypes.data)
    return out


def test_words_bit_for_bit(rng):
    for start in [0, 1, 2**32 + 2, int(rng.integers(0, 2**62))]:
        seed, stream = fresh_seed(rng), fresh_seed(rng)
        assert np.array_equal(element_words(lib, start, 777, seed, stream),
                              ks.element_words([start], 777, seed, stream)[0])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("scheme", ["uniform", "normal", "trunc_normal", "orthogonal", "sparse"])
def test_backend_same_with_and_without_kernel(scheme, dtype, monkeypatch, rng):
    seed, kw = fresh_seed(rng), ({"sparsity": 0.3} if scheme == "sparse" else {})
    fast = as_f64(gpuinit.init_(empty((129, 67), dtype), scheme, seed=seed, **kw))
    view = as_f64(gpuinit.init_(empty((67, 129), dtype).T, scheme, seed=seed, **kw))  # strided: through a buffer
    monkeypatch.setenv("GPUINIT_CPU_KERNEL", "0")
    cpu_kernel.reset()
    try:
        assert cpu_kernel.load() is None
        slow = as_f64(gpuinit.init_(empty((129, 67), dtype), scheme, seed=seed, **kw))
    finally:
        monkeypatch.delenv("GPUINIT_CPU_KERNEL")
        cpu_kernel.reset()
    assert np.array_equal(fast, slow) and np.array_equal(view, slow)


def test_half_conversion_matches_numpy(rng):
    """The kernels' float32 -> float16 rounding (normals, subnormals, overflow, ties) equals NumPy's."""
    special = np.array([0.0, -0.0, 65504.0, 65519.99, 65520.0, 1e9, -1e9, 2.0**-14, 2.0**-24, 2.0**-25,
                        2.0**-25 * 1.0000001, 3 * 2.0**-25, 6.1e-5, 1 + 2.0**-11, 1 + 3 * 2.0**-11], np.float32)
    bits = rng.integers(0, 2**32, 2_000_000, dtype=np.uint64).astype(np.uint32)
    x = np.concatenate([special, -special, bits.view(np.float32)])
    x = x[np.isfinite(x)]
    with np.errstate(over="ignore"):  # values past 65520 become inf, in both
        ref = x.astype(np.float16).view(np.uint16)
    assert np.array_equal(half_bits(lib, x), ref)


def _cpu_level():
    """The x86-64 level of this CPU from /proc/cpuinfo's flags (written again, apart from gi_cpu_level)."""
    with open("/proc/cpuinfo") as f:
        flags = set(next(line for line in f if line.startswith("flags")).split(":")[1].split())
    if {"avx512f", "avx512bw", "avx512cd", "avx512dq", "avx512vl", "avx2", "fma", "bmi2"} <= flags:
        return 4
    if {"avx2", "fma", "bmi2", "movbe", "f16c"} <= flags:
        return 3
    return 2 if {"sse4_2", "popcnt"} <= flags else 1


def _packaged_libraries():
    return {f.name[len("_host_"):].split(".")[0]: f for f in cpu_kernel.PACKAGED.glob("_host_*.so")}


x86 = pytest.mark.skipif(not Path("/proc/cpuinfo").exists() or platform.machine() != "x86_64",
                         reason="x86-64 levels: Linux on x86-64")


@x86
def test_the_installed_package_s_build_for_this_cpu_is_loaded(monkeypatch):
    monkeypatch.delenv("GPUINIT_CPU_KERNEL", raising=False)
    cpu_kernel.reset()
    try:
        found = _packaged_libraries()
        assert sorted(found) == ["v1", "v3", "v4"], found  # built with the package (pip install builds them)
        level = _cpu_level()
        want = "v4" if level == 4 else "v3" if level == 3 else "v1"
        assert ctypes.CDLL(str(found["v1"])).gi_cpu_level() == level
        assert cpu_kernel.where().startswith("compiled with the package"), cpu_kernel.where()
        assert f"_host_{want}." in cpu_kernel.where()
    finally:
        cpu_kernel.reset()


@x86
@pytest.mark.parametrize("level", ["v1", "v3", "v4"])
def test_each_level_s_library_returns_the_numpy_bits(level, rng):
    if int(level[1]) > _cpu_level():
        pytest.skip(f"this CPU does not run x86-64-{level} (level {_cpu_level()})")
    path = _packaged_libraries()[level]
    other = cpu_kernel._declare(ctypes.CDLL(str(path)), path)
    assert other.gi_cpu_source_digest  # the symbol is there
    for draw in DRAWS:
        seed, stream = fresh_seed(rng), fresh_seed(rng)
        starts = np.array([0, 2**32 - 3, int(rng.integers(0, 2**61))], np.uint64)
        got = cpu_kernel.draw_values(other, draw, starts, 1031, seed, stream)
        assert np.array_equal(got.view(np.uint32), ks.draw_values(draw, starts, 1031, seed, stream).view(np.uint32))
        for store in ("bfloat16", "float16"):
            got16 = cpu_kernel.draw_values(other, draw, starts, 517, seed, stream, store=store)
            want16 = cpu_kernel.draw_values(lib, draw, starts, 517, seed, stream, store=store)
            assert np.array_equal(got16, want16)


@pytest.fixture
def fresh(monkeypatch, tmp_path):
    monkeypatch.setenv("GPUINIT_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("GPUINIT_CPU_KERNEL", raising=False)
    cpu_kernel.reset()
    yield tmp_path
    cpu_kernel.reset()


def _warnings(caplog):
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING and r.name == "gpuinit"]


def test_a_build_from_other_sources_is_not_used_and_one_is_compiled_here(fresh, monkeypatch, caplog):
    """A checkout whose C sources changed since its build: the stale library is left, one is compiled here."""
    if cpu_kernel._compiler() is None:
        pytest.skip("no C compiler")
    monkeypatch.setattr(cpu_kernel, "source_digest", lambda: "0" * 64)
    with caplog.at_level(logging.WARNING, logger="gpuinit"):
        assert cpu_kernel.load() is not None, cpu_kernel.why_not()
        assert cpu_kernel.load() is not None
    assert cpu_kernel.where().startswith("compiled here for this CPU")
    (warned,) = _warnings(caplog)  # once
    assert "built from other sources" in warned and "compiled it with the system C compiler" in warned


def test_no_build_and_no_compiler_is_numpy_alone_with_one_warning(fresh, monkeypatch, caplog):
    monkeypatch.setattr(cpu_kernel, "PACKAGED", fresh)  # no library there
    monkeypatch.setenv("CC", str(fresh / "no-such-compiler"))
    monkeypatch.setattr(cpu_kernel, "_compiler", lambda: None)
    with caplog.at_level(logging.WARNING, logger="gpuinit"):
        assert cpu_kernel.load() is None
        x = gpuinit.init_(np.empty(1000, np.float32), "normal", seed=3)
    (warned,) = _warnings(caplog)
    assert "no compiled host kernel" in warned and "NumPy alone" in warned
    assert "no C compiler" in cpu_kernel.why_not() and cpu_kernel.where() is None
    assert x.std() == pytest.approx(1.0, rel=0.1)
    assert not (fresh / "cache").exists()  # nothing written


def test_native_compiles_for_this_cpu(fresh, monkeypatch):
    if cpu_kernel._compiler() is None:
        pytest.skip("no C compiler")
    monkeypatch.setenv("GPUINIT_CPU_KERNEL", "native")
    assert cpu_kernel.load() is not None, cpu_kernel.why_not()
    assert cpu_kernel.where().startswith("compiled here for this CPU")
    assert any((fresh / "cache").glob("gpuinit_cpu_*.so"))


def test_the_installed_package_needs_no_compiler_and_writes_nothing(fresh, monkeypatch):
    monkeypatch.setattr(cpu_kernel, "_compiler", lambda: None)
    assert cpu_kernel.load() is not None, cpu_kernel.why_not()
    assert not (fresh / "cache").exists()
