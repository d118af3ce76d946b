"""gpuinit/cli_checks.py, one check at a time: the argparse types (parameter counts, seeds, positive integers,
--out), sizes of the built-in model, devices, free memory, output paths, optional libraries, and the numbers the
messages print (tests/test_cli.py: the same checks as the command reports them)."""
import argparse
from types import SimpleNamespace

import pytest
import torch

from gpuinit import cli_checks as cc
from gpuinit.cli_checks import UsageError
from gpuinit.models import LlamaConfig


@pytest.mark.parametrize("text,value", [("20M", 20_000_000), ("1.5B", 1_500_000_000), ("1e9", 10**9),
                                        ("100m", 10**8), ("250k", 250_000), ("1_000_000", 10**6),
                                        (" 3 G ", 3 * 10**9), ("100000", 100_000), ("2t", 2 * 10**12),
                                        ("1.5e5", 150_000), ("0.5M", 500_000), ("2b", 2 * 10**9)])
def test_parse_size(text, value):
    assert cc.parse_size(text) == value


@pytest.mark.parametrize("text", ["abc", "inf", "nan", "1.2.3", "", "20X", "M", "1e400", "--5", "1 000"])
def test_parse_size_refuses_what_is_no_count(text):
    with pytest.raises(argparse.ArgumentTypeError, match=rf"^{text!r} is not a parameter count: write e.g. 20M"):
        cc.parse_size(text)


@pytest.mark.parametrize("text", ["10", "-5M", "99999", "2.5K", "0", "1e4"])
def test_parse_size_refuses_small_models(text):
    with pytest.raises(argparse.ArgumentTypeError, match=f"must have at least 1e5 parameters, got {text}$"):
        cc.parse_size(text)


@pytest.mark.parametrize("text,value", [("0", 0), ("1e9", 1e9), ("100000", 1e5), ("2.5e6", 2.5e6)])
def test_gpu_model_params(text, value):
    assert cc.gpu_model_params(text) == value


@pytest.mark.parametrize("text", ["1e4", "-1e9", "nan", "inf", "1B", "x", "99999"])
def test_gpu_model_params_refuses(text):
    with pytest.raises(argparse.ArgumentTypeError, match=rf"0 \(no model case\) or a parameter count .*got {text!r}"):
        cc.gpu_model_params(text)


def test_seed():
    assert cc.seed("0") == 0 and cc.seed(str(2**64 - 1)) == 2**64 - 1 and cc.seed(" 17 ") == 17
    for text in ("-1", str(2**64), "1.0", "x", "", "0x10"):
        with pytest.raises(argparse.ArgumentTypeError, match=rf"^must be an integer from 0 to 2\*\*64 - 1, got "
                                                             rf"{text!r}$"):
            cc.seed(text)
    assert cc.seed.__name__ == "integer"  # argparse names the type in its messages


def test_positive_int():
    assert cc.positive_int("1") == 1 and cc.positive_int("123456789012") == 123456789012
    for text in ("0", "-3", "1.5", "two", ""):
        with pytest.raises(argparse.ArgumentTypeError, match=rf"^must be an integer >= 1, got {text!r}$"):
            cc.positive_int(text)


def test_int_range():
    parse = cc.int_range(2, 5)
    assert [parse(str(n)) for n in range(2, 6)] == [2, 3, 4, 5]
    for text in ("1", "6"):
        with pytest.raises(argparse.ArgumentTypeError, match=rf"from 2 to 5, got '{text}'"):
            parse(text)


def test_out_path():
    assert cc.out_path("results") == "results" and cc.out_path(" a ") == " a "
    for text in ("", " ", "\t"):
        with pytest.raises(argparse.ArgumentTypeError, match="must name a directory, got an empty string"):
            cc.out_path(text)


def test_an_argparse_parser_reports_them():
    parser = argparse.ArgumentParser(prog="p", exit_on_error=False)
    parser.add_argument("--seed", type=cc.seed)
    parser.add_argument("--params", type=cc.parse_size)
    args = parser.parse_args(["--seed", "3", "--params", "20M"])
    assert (args.seed, args.params) == (3, 20_000_000)
    with pytest.raises(argparse.ArgumentError, match="must be an integer from 0"):
        parser.parse_args(["--seed", "-1"])


@pytest.mark.parametrize("n,text", [(0, "0"), (999, "999"), (1000, "1K"), (1500, "1.5K"), (100_000, "100K"),
                                    (2_000_000, "2M"), (968_000_000, "968M"), (1.5e9, "1.5B"), (825e9, "825B"),
                                    (3e12, "3T"), (2e15, "2e+15")])
def test_count(n, text):
    assert cc.count(n) == text


def test_gb():
    assert cc.gb(0) == "0.0 GB" and cc.gb(3.9e9) == "3.9 GB" and cc.gb(1234e9) == "1,234.0 GB"


@pytest.mark.parametrize("n,word", [(1, "a"), (8, "an"), (11, "an"), (12, "a"), (18, "an"), (80, "an"),
                                    (83, "an"), (100, "a"), (110, "a"), (800, "an"), (11_000, "an"), (1_800, "a"),
                                    (825_000_000_000, "an"), (18_000, "an"), (180_000, "a")])
def test_article(n, word):
    assert cc.article(n) == word


@pytest.mark.parametrize("argv,name,many,value", [
    (["--out", "d"], "--out", False, "d"), (["--out=d"], "--out", False, "d"), (["x"], "--out", False, None),
    (["--out"], "--out", False, None), (["--sizes", "1", "2", "--quick"], "--sizes", True, ["1", "2"]),
    (["--sizes=4"], "--sizes", True, ["4"]), (["--outx", "d"], "--out", False, None),
    (["--dtypes"], "--dtypes", True, []),
])
def test_option(argv, name, many, value):
    assert cc.option(argv, name, many=many) == value


def test_float_dtype():
    assert [cc.float_dtype(n, torch) for n in cc.FLOAT_DTYPES] == [torch.float32, torch.bfloat16, torch.float16,
                                                                    torch.float64]
    with pytest.raises(UsageError, match="^--dtypes int8: use float32, bfloat16, float16 or float64$"):
        cc.float_dtype("int8", torch, "--dtypes")


def test_model_config():
    largest = LlamaConfig.with_params(10**18)
    assert cc.model_config(20e6, LlamaConfig) == LlamaConfig.with_params(20_000_000)
    assert cc.model_config(1.5 * largest.n_params, LlamaConfig) == largest
    with pytest.raises(UsageError, match=rf"the largest built-in model has {cc.count(largest.n_params)} parameters"):
        cc.model_config(1.5 * largest.n_params + 1, LlamaConfig)


def test_device():
    assert cc.device("cpu", torch) == torch.device("cpu")
    with pytest.raises(UsageError, match="--device 'nosuch' is not a device: use cpu, cuda or cuda:N"):
        cc.device("nosuch", torch)
    with pytest.raises(UsageError, match="--device meta: this runs on cpu or cuda"):
        cc.device("meta", torch)


def fake_torch(count):
    """torch as device() reads it, with ``count`` CUDA devices (0: none)."""
    cuda = SimpleNamespace(is_available=lambda: count > 0, device_count=lambda: count)
    return SimpleNamespace(device=torch.device, cuda=cuda, version=SimpleNamespace(cuda=None), __version__="9.9")


def test_cuda_devices():
    with pytest.raises(UsageError, match=r"--device cuda: no CUDA device here \(torch 9.9, a CPU-only build\); "
                                         r"try the CPU"):
        cc.device("cuda", fake_torch(0), hint="try the CPU")
    assert cc.device("cuda:1", fake_torch(2)) == torch.device("cuda:1")
    with pytest.raises(UsageError, match=r"--device cuda:2: there are 2 CUDA devices \(cuda:0 .. cuda:1\)"):
        cc.device("cuda:2", fake_torch(2))
    with pytest.raises(UsageError, match=r"there is 1 CUDA device \(cuda:0 .. cuda:0\)"):
        cc.device("cuda:1", fake_torch(1))


def test_check_free(monkeypatch):
    cpu = torch.device("cpu")
    monkeypatch.setattr(cc, "free_bytes", lambda dev, torch: 2 * 10**9)
    cc.check_free(2 * 10**9, "buffers", cpu, torch)
    with pytest.raises(UsageError, match=r"^buffers need 3.0 GB, and this machine has 2.0 GB free: try less$"):
        cc.check_free(3 * 10**9, "buffers", cpu, torch, hint=lambda free: "try less")
    with pytest.raises(UsageError, match=r"and cuda:0 has 2.0 GB free$"):
        cc.check_free(3 * 10**9, "buffers", torch.device("cuda:0"), torch, hint=lambda free: None)
    monkeypatch.setattr(cc, "free_bytes", lambda dev, torch: None)  # cannot be told: no refusal
    cc.check_free(10**18, "buffers", cpu, torch)


def test_check_memory(monkeypatch):
    cfg = LlamaConfig.with_params(10**9)
    need = cfg.n_params * 4 * cc.PEAK_FACTOR
    monkeypatch.setattr(cc, "free_bytes", lambda dev, torch: need)
    cc.check_memory(cfg, 4, "float32", torch.device("cpu"), torch)
    monkeypatch.setattr(cc, "free_bytes", lambda dev, torch: need / 2)
    with pytest.raises(UsageError, match=rf"^a {cc.count(cfg.n_params)}-parameter model takes "
                                         rf"{cc.gb(cfg.n_params * 4)} in float32, about {cc.gb(need)} with torch's "
                                         rf"own build for the comparison, and this machine has {cc.gb(need / 2)} "
                                         r"free: try --params \S+$"):
        cc.check_memory(cfg, 4, "float32", torch.device("cpu"), torch)
    monkeypatch.setattr(cc, "free_bytes", lambda dev, torch: 1000)
    with pytest.raises(UsageError, match="even the smallest built-in model does not fit"):
        cc.check_memory(cfg, 4, "float32", torch.device("cpu"), torch)


def hinted_size(free, cfg):
    """The --params check_memory suggests for ``cfg`` when ``free`` bytes are free (float32)."""
    try:
        cc.check_memory(cfg, 4, "float32", torch.device("cpu"), torch)
    except UsageError as e:
        return cc.parse_size(str(e).rsplit(" ", 1)[1])
    raise AssertionError("not refused")


def test_the_model_check_memory_hints_at_fits(monkeypatch):
    """The --params hinted at names a built-in model that fits (--params takes the nearest one, which may be
    larger than the count asked for), and not one far smaller."""
    largest = LlamaConfig.with_params(10**12)
    frees = [8e9, 2e10, 6.9e11, largest.n_params * 4 * cc.PEAK_FACTOR - 1, *(2e9 * 1.02**k for k in range(400))]
    for free in frees:
        monkeypatch.setattr(cc, "free_bytes", lambda dev, torch, free=free: free)
        hinted = cc.model_config(hinted_size(free, largest), LlamaConfig)
        assert hinted.n_params * 4 * cc.PEAK_FACTOR <= free, (free, hinted.n_params)
        for factor in (1.05, 1.2, 1.5, 2.0):  # no larger built-in model fits
            larger = LlamaConfig.with_params(int(hinted.n_params * factor))
            assert larger.n_params <= hinted.n_params or larger.n_params * 4 * cc.PEAK_FACTOR > free, (free, factor)


def test_free_bytes_on_this_machine():
    free = cc.free_bytes(torch.device("cpu"), torch)
    assert free is None or 0 < free < 2**60


def test_writable_dir(tmp_path):
    cc.writable_dir(tmp_path / "a" / "b", "--out")
    assert (tmp_path / "a" / "b").is_dir() and not any((tmp_path / "a" / "b").iterdir())  # the probe is gone
    file = tmp_path / "f"
    file.write_text("")
    with pytest.raises(UsageError, match=rf"^--out {file}: is a file, not a directory$"):
        cc.writable_dir(file, "--out")
    with pytest.raises(UsageError, match=rf"^--out x.json: in {file}/sub: cannot write there"):
        cc.writable_dir(file / "sub", "--out", given="x.json")


def test_results_file(tmp_path):
    assert cc.results_file(str(tmp_path / "r.json"), "cpu.json") == tmp_path / "r.json"
    assert cc.results_file(str(tmp_path / "new" / "r.json"), "cpu.json") == tmp_path / "new" / "r.json"
    assert (tmp_path / "new").is_dir()
    assert cc.results_file(str(tmp_path / "dir"), "cpu.json") == tmp_path / "dir" / "cpu.json"
    assert cc.results_file(str(tmp_path / "dir"), "gpu.json") == tmp_path / "dir" / "gpu.json"
    (tmp_path / "d.json").mkdir()
    assert cc.results_file(str(tmp_path / "d.json"), "cpu.json") == tmp_path / "d.json" / "cpu.json"
    (tmp_path / "notes.txt").write_text("")
    with pytest.raises(UsageError, match=r"is a file, not a directory \(a results file must end in .json\)"):
        cc.results_file(str(tmp_path / "notes.txt"), "cpu.json", flag="--save")


def test_paths_that_cannot_be_looked_up(tmp_path):
    """Path.exists raises on a name too long or a file used as a directory: a UsageError, as any unwritable path."""
    long = tmp_path / ("x" * 300)
    file = tmp_path / "f"
    file.write_text("")
    for check in (lambda p: cc.writable_dir(p, "--out"), lambda p: cc.results_file(str(p), "cpu.json"),
                  lambda p: cc.results_file(str(p) + ".json", "cpu.json")):
        with pytest.raises(UsageError, match=r"cannot write there \(File name too long\)$"):
            check(long)
        with pytest.raises(UsageError, match=r"cannot write there \(File name too long\)$"):
            check(long / "sub")
        with pytest.raises(UsageError, match=r"cannot write there \(Not a directory\)$"):
            check(file / "sub")


def test_require_and_installed():
    assert cc.require("json", "x").dumps([]) == "[]"
    cc.installed("json", "x")
    for check in (cc.require, cc.installed):
        with pytest.raises(UsageError, match=r"^this needs gpuinit_no_such_module, which is not installed: "
                                             r"pip install 'matplotlib>=3\.7'$"):
            check("gpuinit_no_such_module", "plot")


def test_require_keeps_a_missing_dependency_of_the_module(monkeypatch, tmp_path):
    """A module that is there but fails to import one of its own imports is not reported as not installed."""
    (tmp_path / "gpuinit_test_broken.py").write_text("import gpuinit_no_such_dependency\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ModuleNotFoundError, match="gpuinit_no_such_dependency"):
        cc.require("gpuinit_test_broken", "plot")


def test_gpu_sizes(monkeypatch):
    monkeypatch.setattr(cc, "free_bytes", lambda dev, torch: 3 * 8 * 2**20)
    cuda = torch.device("cuda:0")
    cc.gpu_sizes(["--dtypes", "float64"], [2**20], cuda, torch)
    with pytest.raises(UsageError, match=r"--sizes 2097152: 3 buffers of 2,097,152 elements of 8 bytes need "
                                         r".*try --sizes 1048576 or less"):
        cc.gpu_sizes(["--dtypes", "float64"], [2**21], cuda, torch)
    cc.gpu_sizes([], [2**21], cuda, torch)  # float32 by default: 4 bytes
    with pytest.raises(UsageError, match="--dtypes int8"):
        cc.gpu_sizes(["--dtypes", "int8"], [1], cuda, torch)
