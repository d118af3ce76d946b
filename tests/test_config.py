"""gpuinit/config.py: every $GPUINIT_* variable parsed in one place; unset and blank are the default, and a value
gpuinit cannot take is a ValueError that names the variable."""
import os
from pathlib import Path

import pytest

from gpuinit import config
from gpuinit.errors import ConfigError, InitError, UnknownBackendError

VARIABLES = (config.BACKEND, config.NUM_THREADS, config.CPU_KERNEL, config.CACHE)
BACKENDS = ("numpy", "triton", "cupy")


@pytest.fixture(autouse=True)
def clean(monkeypatch):
    for name in VARIABLES:
        monkeypatch.delenv(name, raising=False)


def test_the_variables_names():
    assert VARIABLES == ("GPUINIT_BACKEND", "GPUINIT_NUM_THREADS", "GPUINIT_CPU_KERNEL", "GPUINIT_CACHE")
    assert issubclass(ConfigError, ValueError) and issubclass(UnknownBackendError, ValueError)


@pytest.mark.parametrize("value,expected", [("abc", "abc"), ("  x y \t", "x y"), ("", None), ("   ", None),
                                            ("\n", None)])
def test_raw_strips_and_blank_is_unset(monkeypatch, value, expected):
    assert config.raw("GPUINIT_TEST_RAW") is None
    monkeypatch.setenv("GPUINIT_TEST_RAW", value)
    assert config.raw("GPUINIT_TEST_RAW") == expected


@pytest.mark.parametrize("value", ["1", "true", "TRUE", "Yes", "on", " On "])
def test_flag_true(monkeypatch, value):
    monkeypatch.setenv(config.CPU_KERNEL, value)
    assert config.flag(config.CPU_KERNEL, default=False) is True


@pytest.mark.parametrize("value", ["0", "false", "False", "NO", "off", " off"])
def test_flag_false(monkeypatch, value):
    monkeypatch.setenv(config.CPU_KERNEL, value)
    assert config.flag(config.CPU_KERNEL, default=True) is False


@pytest.mark.parametrize("default", [True, False])
@pytest.mark.parametrize("value", [None, "", "  "])
def test_flag_unset_is_the_default(monkeypatch, value, default):
    if value is not None:
        monkeypatch.setenv(config.CPU_KERNEL, value)
    assert config.flag(config.CPU_KERNEL, default=default) is default


@pytest.mark.parametrize("value", ["maybe", "2", "-1", "y", "enabled", "1.0"])
def test_flag_refuses_other_words(monkeypatch, value):
    monkeypatch.setenv(config.CPU_KERNEL, value)
    with pytest.raises(ConfigError, match=rf"^\$GPUINIT_CPU_KERNEL='{value}' is not a switch.*default \(1\)"):
        config.flag(config.CPU_KERNEL, default=True)
    with pytest.raises(ConfigError, match=r"default \(0\)"):
        config.flag(config.CPU_KERNEL, default=False)


def test_num_threads_unset_or_zero_is_one_per_cpu(monkeypatch):
    cpus = config.usable_cpus()
    assert config.num_threads() == cpus
    for value in ("0", " 0 ", "", "00"):
        monkeypatch.setenv(config.NUM_THREADS, value)
        assert config.num_threads() == cpus


@pytest.mark.parametrize("value,n", [("1", 1), ("3", 3), (" 7 ", 7), ("64", 64), ("+2", 2)])
def test_num_threads_counts(monkeypatch, value, n):
    monkeypatch.setenv(config.NUM_THREADS, value)
    assert config.num_threads() == n


@pytest.mark.parametrize("value", ["abc", "-1", "-3", "1.5", "2e3", "one", "0x10"])
def test_num_threads_refuses(monkeypatch, value):
    monkeypatch.setenv(config.NUM_THREADS, value)
    with pytest.raises(ConfigError, match=rf"^\$GPUINIT_NUM_THREADS='{value}' is not a thread count.*"
                                          rf"\({os.cpu_count() or 1} here\)"):
        config.num_threads()


def test_backend(monkeypatch):
    assert config.backend(BACKENDS) is None
    for value, name in (("numpy", "numpy"), ("NumPy", "numpy"), (" TRITON ", "triton"), ("cupy", "cupy")):
        monkeypatch.setenv(config.BACKEND, value)
        assert config.backend(BACKENDS) == name
    monkeypatch.setenv(config.BACKEND, "  ")
    assert config.backend(BACKENDS) is None


@pytest.mark.parametrize("value", ["opencl", "staged", "num py", "numpy,triton"])
def test_backend_refuses_other_names(monkeypatch, value):
    monkeypatch.setenv(config.BACKEND, value)
    with pytest.raises(UnknownBackendError, match=r"unknown backend .* in \$GPUINIT_BACKEND: set it to one of "
                                                  r"\['cupy', 'numpy', 'triton'\]"):
        config.backend(BACKENDS)
    assert config.backend((*BACKENDS, value.lower())) == value.lower()  # the caller's list decides


def test_cache_dir(monkeypatch, tmp_path):
    assert config.cache_dir() is None
    monkeypatch.setenv(config.CACHE, str(tmp_path / "new" / "deeper"))  # need not exist yet
    assert config.cache_dir() == tmp_path / "new" / "deeper"
    monkeypatch.setenv(config.CACHE, f"  {tmp_path}  ")
    assert config.cache_dir() == tmp_path
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv(config.CACHE, "~/gi")
    assert config.cache_dir() == tmp_path / "gi" and isinstance(config.cache_dir(), Path)


def test_cache_dir_refuses(monkeypatch, tmp_path):
    monkeypatch.setenv(config.CACHE, "relative/dir")
    with pytest.raises(ConfigError, match=r"^\$GPUINIT_CACHE='relative/dir' is not an absolute path"):
        config.cache_dir()
    file = tmp_path / "file"
    file.write_text("")
    monkeypatch.setenv(config.CACHE, str(file))
    with pytest.raises(ConfigError, match=r"^\$GPUINIT_CACHE=.* is not a directory"):
        config.cache_dir()


@pytest.mark.parametrize("var,value,error", [(config.BACKEND, "xyz", UnknownBackendError),
                                             (config.NUM_THREADS, "x", ConfigError),
                                             (config.CPU_KERNEL, "x", ConfigError),
                                             (config.CACHE, "rel", ConfigError)])
def test_check_parses_every_variable(monkeypatch, var, value, error):
    config.check(BACKENDS)
    monkeypatch.setenv(var, value)
    with pytest.raises(error, match=var) as e:
        config.check(BACKENDS)
    assert isinstance(e.value, InitError) and isinstance(e.value, ValueError)


def test_check_raises_on_the_first_bad_one(monkeypatch):
    monkeypatch.setenv(config.NUM_THREADS, "x")
    monkeypatch.setenv(config.CACHE, "rel")
    with pytest.raises(ConfigError, match=config.NUM_THREADS):
        config.check(BACKENDS)
    monkeypatch.setenv(config.BACKEND, "xyz")
    with pytest.raises(UnknownBackendError, match=config.BACKEND):
        config.check(BACKENDS)


def test_values_are_read_when_asked(monkeypatch):
    """Nothing is cached: a variable changed between calls takes effect at the next call (the NumPy backend's
    thread count included)."""
    from gpuinit import backends

    monkeypatch.setenv(config.NUM_THREADS, "3")
    assert config.num_threads() == 3 and backends.load("numpy").num_threads() == 3
    monkeypatch.setenv(config.NUM_THREADS, "5")
    assert config.num_threads() == 5 and backends.load("numpy").num_threads() == 5
    monkeypatch.setenv(config.CPU_KERNEL, "No")
    assert config.flag(config.CPU_KERNEL, default=True) is False


def test_pinned_reads_the_variables_once(monkeypatch):
    """A whole-model call reads the settings on entry only: a bad value is refused then, and changes within the
    block are not seen (no read per tensor); outside it they are read again."""
    monkeypatch.setenv(config.BACKEND, "numpy")
    with config.pinned(BACKENDS):
        monkeypatch.setenv(config.BACKEND, "cupy")
        monkeypatch.setenv(config.NUM_THREADS, "-1")
        assert config.backend(BACKENDS) == "numpy"
        config.check(BACKENDS)  # not read again: no error
        with config.pinned(BACKENDS):  # nested: the outer settings stay
            assert config.backend(BACKENDS) == "numpy"
    assert config.backend(BACKENDS) == "cupy"
    with pytest.raises(ConfigError, match="GPUINIT_NUM_THREADS"):
        config.check(BACKENDS)
    with pytest.raises(ConfigError, match="GPUINIT_NUM_THREADS"), config.pinned(BACKENDS):
        pass


def test_check_parses_again_when_a_value_changes(monkeypatch, tmp_path):
    config.check(BACKENDS)
    config.check(BACKENDS)  # the same values: not parsed again
    monkeypatch.setenv(config.CPU_KERNEL, "maybe")
    with pytest.raises(ConfigError, match="GPUINIT_CPU_KERNEL='maybe'"):
        config.check(BACKENDS)
    monkeypatch.setenv(config.CPU_KERNEL, "1")
    config.check(BACKENDS)


def _cgroup(tmp_path, proc, files):
    (tmp_path / "proc").write_text(proc)
    for rel, text in files.items():
        (tmp_path / "fs" / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "fs" / rel).write_text(text)
    return str(tmp_path / "proc"), str(tmp_path / "fs")


def test_usable_cpus_follow_the_affinity_mask(monkeypatch, tmp_path):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 3, 5})
    monkeypatch.setattr(os, "cpu_count", lambda: 64)
    assert config.usable_cpus(str(tmp_path / "none"), str(tmp_path)) == 3


@pytest.mark.parametrize("proc,files,n", [
    ("0::/job\n", {"job/cpu.max": "150000 100000\n"}, 2),  # cgroup v2: 1.5 CPUs -> 2 threads
    ("0::/a/b\n", {"a/b/cpu.max": "max 100000\n", "a/cpu.max": "300000 100000\n"}, 3),  # a parent's quota
    ("0::/\n", {"cpu.max": "100000 100000\n"}, 1),  # a container sees its own cgroup as "/"
    ("0::/job\n", {"job/cpu.max": "max 100000\n"}, 8),  # no quota: the affinity mask
    ("4:cpu,cpuacct:/slurm/job\n", {"cpu,cpuacct/slurm/job/cpu.cfs_quota_us": "400000\n",
                                     "cpu,cpuacct/slurm/job/cpu.cfs_period_us": "100000\n"}, 4),  # v1
    ("1:cpu:/k\n", {"cpu/k/cpu.cfs_quota_us": "-1\n", "cpu/k/cpu.cfs_period_us": "100000\n"}, 8),  # v1 unlimited
    ("0::/job\n", {"job/cpu.max": "garbage\n"}, 8),
    ("1:memory:/x\n", {}, 8),  # no cpu controller
])
def test_usable_cpus_capped_by_the_cgroup_quota(monkeypatch, tmp_path, proc, files, n):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(8)))
    assert config.usable_cpus(*_cgroup(tmp_path, proc, files)) == n


def test_usable_cpus_without_affinity_count_the_machine(monkeypatch, tmp_path):
    def missing(pid):
        raise OSError("no affinity")

    monkeypatch.setattr(os, "sched_getaffinity", missing)
    monkeypatch.setattr(os, "cpu_count", lambda: 6)
    assert config.usable_cpus(str(tmp_path / "none"), str(tmp_path)) == 6


def test_threads_in_a_process_pinned_to_one_cpu():
    """taskset's way: a child pinned to one CPU gets one thread per usable CPU, not os.cpu_count()."""
    import subprocess
    import sys

    code = "import os; os.sched_setaffinity(0, {min(os.sched_getaffinity(0))}); from gpuinit import config; " \
           "print(config.num_threads())"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={k: v for k, v in os.environ.items() if k != config.NUM_THREADS})
    assert out.stdout.strip() == "1"


@pytest.mark.parametrize("value,mode", [(None, "package"), ("1", "package"), ("yes", "package"), ("native", "native"),
                                        (" NATIVE ", "native"), ("0", "off"), ("off", "off")])
def test_cpu_kernel_setting(monkeypatch, value, mode):
    if value is None:
        monkeypatch.delenv(config.CPU_KERNEL, raising=False)
    else:
        monkeypatch.setenv(config.CPU_KERNEL, value)
    assert config.cpu_kernel() == mode
