"""The host kernel's cache (GPUINIT_CPU_KERNEL=native, or no build in the package) loads only what it built,
survives damage and interrupts, is safe to race, and is cleared of what killed builds leave."""
import hashlib
import logging
import os
import shutil
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import numpy as np
import pytest
from kernel_cache_helpers import CC, age, building, compile_lib, evil, fill, only_cache_files, plant, python, reference

import gpuinit
from gpuinit.backends import cpu_kernel

pytestmark = pytest.mark.skipif(CC is None, reason="no C compiler")
as_root = pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="chown needs root")

FILL = "np.empty((64, 32), np.float32), 'normal', seed=0"
WARNED = "cached host kernel rejected"


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """One real build, copied into the tests' caches that start from a good cached library."""
    d = tmp_path_factory.mktemp("built") / "c"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GPUINIT_CACHE", str(d))
        mp.setenv("GPUINIT_CPU_KERNEL", "native")
        cpu_kernel.reset()
        try:
            assert cpu_kernel.load() is not None, cpu_kernel.why_not()
        finally:
            cpu_kernel.reset()
    return d


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """An empty, private cache directory for this test alone, where the host kernel is compiled for this CPU
    (the package's own build is not used)."""
    d = tmp_path / "c"
    monkeypatch.setenv("GPUINIT_CACHE", str(d))
    monkeypatch.setenv("GPUINIT_CPU_KERNEL", "native")
    cpu_kernel.reset()
    yield d
    cpu_kernel.reset()


@pytest.fixture
def seeded(cache, built):
    """The cache holding a good build: (directory, library path)."""
    shutil.copytree(built, cache)
    so = next(cache.glob("*.so"))
    assert so.name == cpu_kernel._key(CC)
    return cache, so


@pytest.mark.parametrize("how", ["digest", "group_writable", "symlink", pytest.param("other_owner", marks=as_root)])
def test_planted_library_is_never_loaded(how, seeded, tmp_path, caplog):
    d, so = seeded
    good = so.read_bytes()
    data, marker = evil(tmp_path)
    if how == "symlink":
        plant(so, b"", forge_sidecar=False)
        so.unlink()
        (tmp_path / "evil.so").write_bytes(data)
        so.symlink_to(tmp_path / "evil.so")
        so.with_name(so.name + ".sha256").write_text(hashlib.sha256(data).hexdigest())
    else:
        plant(so, data, forge_sidecar=how != "digest")
    if how == "group_writable":
        os.chmod(so, 0o620)
    elif how == "other_owner":
        os.chown(so, 4242, 4242)
    with caplog.at_level(logging.WARNING, logger="gpuinit"):
        assert cpu_kernel.load() is not None, cpu_kernel.why_not()
    assert not marker.exists()
    assert cpu_kernel.why_not() is None
    assert any(WARNED in r.getMessage() for r in caplog.records)
    assert not so.is_symlink() and cpu_kernel._verified(so) == good  # rebuilt in place
    only_cache_files(d)


def test_truncated_library_is_rebuilt_not_crashed_on(seeded, tmp_path):
    d, so = seeded
    good = so.read_bytes()
    os.truncate(so, len(good) // 2)
    r = python(f"""
        import numpy as np, gpuinit
        from gpuinit.backends import cpu_kernel
        assert cpu_kernel.load() is not None, cpu_kernel.why_not()
        gpuinit.init_({FILL})
        """, dict(os.environ), tmp_path)
    assert r.returncode == 0, r.stderr
    assert WARNED in r.stderr
    assert so.read_bytes() == good
    only_cache_files(d)


def test_library_without_the_functions_is_rebuilt(seeded, tmp_path, caplog):
    _, so = seeded
    plant(so, compile_lib(tmp_path, "int unrelated;\n"), forge_sidecar=True)
    with caplog.at_level(logging.WARNING, logger="gpuinit"):
        assert cpu_kernel.load() is not None, cpu_kernel.why_not()
    assert any(WARNED in r.getMessage() and "lacks the function gi_cpu_" in r.getMessage() for r in caplog.records)
    assert np.array_equal(np.frombuffer(fill(), np.float32), np.frombuffer(reference(), np.float32))


def test_missing_function_after_rebuild_falls_back_with_reason(seeded, monkeypatch, caplog):
    monkeypatch.setitem(cpu_kernel.SYMBOLS, "gi_cpu_missing", [])
    compiles = []
    real = cpu_kernel._compile
    monkeypatch.setattr(cpu_kernel, "_compile", lambda *a: compiles.append(a) or real(*a))
    with caplog.at_level(logging.WARNING, logger="gpuinit"):
        assert cpu_kernel.load() is None
    assert len(compiles) == 1  # the cached one, then one rebuild
    assert "gi_cpu_missing" in cpu_kernel.why_not()
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2 and all("gi_cpu_missing" in w for w in warnings)
    assert fill() == reference()  # the NumPy path takes over


def test_interrupted_build_is_retried(cache, monkeypatch):
    real = subprocess.run
    interrupts = []

    def run(args, *a, **kw):
        if "-o" in args and not interrupts:
            interrupts.append(args)
            raise KeyboardInterrupt
        return real(args, *a, **kw)

    monkeypatch.setattr(cpu_kernel.subprocess, "run", run)
    with pytest.raises(KeyboardInterrupt):
        cpu_kernel.load()
    assert interrupts and cpu_kernel._state == {}
    assert list(cache.iterdir()) == []  # no half-written files left behind
    assert cpu_kernel.load() is not None, cpu_kernel.why_not()
    assert cpu_kernel.why_not() is None
    only_cache_files(cache)


@pytest.mark.skipif(not hasattr(os, "killpg"), reason="POSIX process groups")
def test_a_killed_build_is_removed_by_the_next_and_a_running_one_kept(cache, tmp_path, monkeypatch):
    """Two processes stopped in a build; one is killed (SIGKILL: nothing of its own runs). A build here, once their
    directories are old, removes the dead one's and keeps the live one's (its lock is held)."""
    monkeypatch.delenv("CC", raising=False)
    with building(cache, tmp_path) as dead_dir:
        pass
    assert dead_dir.exists()
    with building(cache, tmp_path) as live_dir:
        age(dead_dir)
        age(live_dir)
        assert cpu_kernel.load() is not None, cpu_kernel.why_not()
        assert not dead_dir.exists() and live_dir.exists()


def test_stale_leftovers_are_removed_young_ones_kept(cache):
    """A lockless build directory (killed before its lock, or made by a gpuinit without one) and the temporary
    files of a killed store or load go once STALE_AFTER old; younger ones, the cached files and links stay."""
    cache.mkdir(mode=0o700)
    old = [cache / ".build-old", cache / ".load-old.so", cache / ".gpuinit_cpu_0.so.tmp", cache / ".build-free"]
    young = [cache / ".build-young", cache / ".load-young.so", cache / ".build-held"]
    kept = [cache / "gpuinit_cpu_0.so", cache / "gpuinit_cpu_0.so.sha256", cache / ".build-link"]
    for p in old + young + kept[:2]:
        p.mkdir() if p.name.startswith(".build-") else p.write_bytes(b"")
    (cache / ".build-free" / cpu_kernel.BUILD_LOCK).write_bytes(b"")  # a lock its dead build no longer holds
    (cache / ".build-link").symlink_to(cache / ".build-young")
    held = cpu_kernel._hold_lock(cache / ".build-held" / cpu_kernel.BUILD_LOCK)
    try:
        for p in [*old, *kept, cache / ".build-held"]:
            age(p)
        cpu_kernel._remove_stale(cache)
        assert not any(p.exists() for p in old)
        assert all(p.exists() for p in young + kept)
    finally:
        os.close(held)


@pytest.mark.parametrize("how", ["group_writable", "other_writable", pytest.param("other_owner", marks=as_root)])
def test_shared_cache_directory_is_refused(how, cache, caplog):
    cache.mkdir(mode=0o700)
    if how == "other_owner":
        os.chown(cache, 4242, 4242)
    else:
        os.chmod(cache, 0o770 if how == "group_writable" else 0o703)
    with caplog.at_level(logging.WARNING, logger="gpuinit"):
        assert cpu_kernel.load() is None
    why = cpu_kernel.why_not()
    assert f"cache directory {cache} refused" in why
    assert any(why in r.getMessage() for r in caplog.records)
    assert list(cache.iterdir()) == []
    assert fill() == reference()


def test_new_cache_directory_is_private(cache):
    assert cpu_kernel.load() is not None, cpu_kernel.why_not()
    assert cache.stat().st_mode & 0o777 == 0o700
    assert all(p.stat().st_mode & 0o077 == 0 for p in cache.iterdir())


def test_key_depends_on_cpu_features(seeded, monkeypatch):
    d, so = seeded
    features = cpu_kernel._cpu_features(CC)
    assert features
    if os.uname().machine in ("x86_64", "AMD64"):
        assert "__SSE2__" in features
    monkeypatch.setattr(cpu_kernel, "_cpu_features", lambda cc: "a")
    a = cpu_kernel._key(CC)
    monkeypatch.setattr(cpu_kernel, "_cpu_features", lambda cc: "b")
    assert len({a, cpu_kernel._key(CC), so.name}) == 3
    assert cpu_kernel.load() is not None  # another CPU's build is not used: a second one is made
    assert sorted(p.name for p in d.glob("*.so")) == sorted([so.name, cpu_kernel._key(CC)])


def test_cache_location_order(monkeypatch, tmp_path):
    monkeypatch.setenv("GPUINIT_CACHE", str(tmp_path / "g"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "x"))
    monkeypatch.setenv("HOME", str(tmp_path / "h"))
    assert cpu_kernel._cache_root() == tmp_path / "g"
    monkeypatch.delenv("GPUINIT_CACHE")
    assert cpu_kernel._cache_root() == tmp_path / "x" / "gpuinit"
    monkeypatch.setenv("XDG_CACHE_HOME", "relative")  # ignored, as the XDG spec says
    assert cpu_kernel._cache_root() == tmp_path / "h" / ".cache" / "gpuinit"


def test_xdg_cache_without_home(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("HOME", "GPUINIT_CACHE", "XDG_CACHE_HOME")}
    env["GPUINIT_CPU_KERNEL"] = "native"
    xdg = tmp_path / "xdg"
    r = python(f"""
        import os, pwd
        from pathlib import Path

        def no_entry(uid):
            raise KeyError(uid)

        pwd.getpwuid = no_entry  # as for a uid without a passwd entry
        try:
            Path.home()
        except RuntimeError:
            pass
        else:
            raise SystemExit("a home directory was found")
        import numpy as np, gpuinit
        from gpuinit.backends import cpu_kernel
        assert cpu_kernel.load() is None
        assert "no home directory" in cpu_kernel.why_not(), cpu_kernel.why_not()
        os.environ["XDG_CACHE_HOME"] = {str(xdg)!r}
        cpu_kernel.reset()
        assert cpu_kernel.load() is not None, cpu_kernel.why_not()
        gpuinit.init_({FILL})
        """, env, tmp_path)
    assert r.returncode == 0, r.stderr
    only_cache_files(xdg / "gpuinit")


def test_eight_processes_on_an_empty_cache(cache, tmp_path):
    code = textwrap.dedent(f"""
        import sys, numpy as np, gpuinit
        from gpuinit.backends import cpu_kernel
        assert cpu_kernel.load() is not None, cpu_kernel.why_not()
        sys.stdout.write(gpuinit.init_({FILL}).tobytes().hex())
        """)
    procs = [subprocess.Popen([sys.executable, "-c", code], env=dict(os.environ), cwd=tmp_path,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(8)]
    outs = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs), [err for _, err in outs]
    assert {out for out, _ in outs} == {reference().hex()}
    only_cache_files(cache)


def test_eight_threads_on_an_empty_cache(cache):
    barrier, results = threading.Barrier(8), [None] * 8

    def work(i):
        barrier.wait()
        results[i] = fill()

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert cpu_kernel.why_not() is None
    assert set(results) == {reference()}
    only_cache_files(cache)


def test_build_returns_the_verified_cached_library(seeded):
    _, so = seeded
    assert cpu_kernel.build() == so
    assert Path(so).read_bytes() == cpu_kernel._verified(so)


def test_builds_under_a_permissive_umask(cache):
    old = os.umask(0o002)  # a common default: the compiler's output is group-writable
    try:
        assert cpu_kernel.load() is not None, cpu_kernel.why_not()
    finally:
        os.umask(old)
    assert all(f.stat().st_mode & 0o077 == 0 for f in cache.iterdir())


def test_a_fifo_in_the_cache_is_refused_not_waited_on(seeded):
    cache, so = seeded
    so.unlink()
    os.mkfifo(so, 0o600)
    r = subprocess.run([sys.executable, "-c", f"import numpy as np, gpuinit; gpuinit.init_({FILL})"],
                       env={**os.environ, "GPUINIT_CACHE": str(cache)}, timeout=120, capture_output=True, text=True,
                       check=False)
    assert r.returncode == 0, r.stderr


def test_cc_with_arguments_is_split_as_a_shell_would(cache, monkeypatch):
    monkeypatch.setenv("CC", f"{CC[0]} -std=c11")
    assert cpu_kernel._compiler() == [CC[0], "-std=c11"]
    assert cpu_kernel.load() is not None, cpu_kernel.why_not()


@pytest.mark.parametrize("value,match", [("relative/dir", "not an absolute path"), ("/etc/passwd", "not a directory")])
def test_a_bad_cache_setting_is_an_error_naming_it(value, match, monkeypatch):
    monkeypatch.setenv("GPUINIT_CACHE", value)
    x = np.full(8, 7.0, np.float32)
    with pytest.raises(gpuinit.ConfigError, match=f"GPUINIT_CACHE.*{match}"):
        gpuinit.init_(x, "normal", seed=0)
    assert (x == 7.0).all()


def test_cache_setting_expands_the_home_directory(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("GPUINIT_CACHE", "~/gi-cache")
    from gpuinit import config

    assert config.cache_dir() == tmp_path / "gi-cache"
