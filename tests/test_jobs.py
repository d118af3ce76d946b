"""gpuinit/jobs.py: prepare makes every check and writes nothing (its errors name the tensor and keep their type);
run hands each backend its jobs as one group, skips arrays with nothing to write, and reports progress per slice
of CPU work."""
import math

import numpy as np
import pytest
import torch

import gpuinit
from gpuinit import distributed, draws, jobs
from gpuinit.backends import numpy_backend
from gpuinit.errors import InitError, UnknownBackendError, ZeroFanError


def sentinel(shape=(6, 5), dtype=np.float32):
    return np.arange(math.prod(shape), dtype=dtype).reshape(shape) + 0.5


def test_prepare_makes_a_job_and_writes_nothing():
    x = sentinel()
    job = jobs.prepare(x, "he_normal", {}, seed=11, stream=3, name="w")
    assert np.array_equal(x, sentinel())
    assert job.array is x and job.backend is numpy_backend and job.backend.NAME == "numpy"
    assert (job.full_shape, job.offsets, job.seed, job.stream, job.bits, job.name) == ((6, 5), (0, 0), 11, 3, None, "w")
    assert job.draw.kind == "trunc_normal" and job.numel == 30 and job.writes
    jobs.run([job])
    assert np.array_equal(x, gpuinit.init_(np.empty((6, 5), np.float32), "he_normal", seed=11, stream=3))


def test_prepare_takes_the_fans_of_the_full_shape():
    block = jobs.prepare(np.empty((2, 3), np.float32), "he_normal", {}, seed=0, full_shape=(8, 6), offsets=(4, 3))
    whole = jobs.prepare(np.empty((8, 6), np.float32), "he_normal", {}, seed=0)
    other = jobs.prepare(np.empty((8, 7), np.float32), "he_normal", {}, seed=0)
    assert (block.full_shape, block.offsets) == ((8, 6), (4, 3))
    assert block.draw == whole.draw and block.draw != other.draw
    swapped = jobs.prepare(np.empty((8, 6), np.float32), "he_normal", {}, seed=0, in_axis=0, out_axis=1)
    transposed = jobs.prepare(np.empty((6, 8), np.float32), "he_normal", {}, seed=0)
    assert swapped.draw == transposed.draw != whole.draw


def test_prepare_fits_the_draw_to_the_dtype():
    """A value that fits float32 but not float16 is refused for the float16 array only."""
    jobs.prepare(np.empty(3, np.float32), "constant", {"value": 1e5}, seed=0)
    with pytest.raises(InitError, match="float16"):
        jobs.prepare(np.empty(3, np.float16), "constant", {"value": 1e5}, seed=0)
    assert jobs.prepare(torch.empty(3, dtype=torch.bfloat16), "constant", {"value": 1e5}, seed=0).writes


@pytest.mark.parametrize("kw,error,match", [
    ({"seed": -1}, InitError, "seed must be an integer"),
    ({"seed": 2**64}, InitError, "seed must be an integer"),
    ({"seed": 0, "stream": 2**64}, InitError, "stream must be an integer"),
    ({"seed": 0, "stream": 1.0}, InitError, "stream must be an integer"),
    ({"seed": 0, "full_shape": (3, 5)}, InitError, "does not fit"),
    ({"seed": 0, "in_axis": 0}, InitError, "must not overlap"),
    ({"seed": 0, "backend": "nope"}, UnknownBackendError, "unknown backend 'nope'"),
    ({"seed": 0, "bits": "bfloat16"}, InitError, "needs a uint16 or int16 array"),
])
def test_prepare_refuses_bad_input_before_writing(kw, error, match):
    x = sentinel()
    with pytest.raises(error, match=match):
        jobs.prepare(x, "normal", {}, **kw)
    with pytest.raises(error, match=rf"^layers\.0\.weight: .*{match}"):
        jobs.prepare(x, "normal", {}, name="layers.0.weight", **kw)
    assert np.array_equal(x, sentinel())


def test_prepare_refuses_bad_parameters_and_arrays():
    with pytest.raises(InitError, match=r"^w: .*std must be >= 0"):
        jobs.prepare(sentinel(), "normal", {"std": -1.0}, seed=0, name="w")
    with pytest.raises(InitError, match=r"^w: unknown scheme 'nope'"):
        jobs.prepare(sentinel(), "nope", {}, seed=0, name="w")
    with pytest.raises(InitError, match="^w: gpuinit fills floating-point arrays"):
        jobs.prepare(np.zeros(3, np.int32), "normal", {}, seed=0, name="w")
    with pytest.raises(ZeroFanError, match=r"^w: .*fan") as e:  # the error keeps its type with the name
        jobs.prepare(np.empty((0, 0), np.float32), "xavier_normal", {}, seed=0, name="w")
    assert isinstance(e.value, ZeroDivisionError)


def test_prepare_draws_the_seed_after_every_check():
    """seed=None takes the next seed of gpuinit.manual_seed's stream, and only once everything has passed."""
    gpuinit.manual_seed(42)
    with pytest.raises(InitError):
        jobs.prepare(sentinel(), "normal", {"std": -1.0}, seed=None)
    first, second = np.random.default_rng(42).integers(0, 2**64, 2, dtype=np.uint64)
    assert jobs.prepare(sentinel(), "normal", {}, seed=None).seed == int(first)
    assert jobs.prepare(sentinel(), "normal", {}, seed=None).seed == int(second)


def test_prepare_refuses_full_shape_for_a_dtensor(monkeypatch):
    """A DTensor brings its own global shape and offsets (distributed.local_block)."""
    x = sentinel((2, 5))
    monkeypatch.setattr(distributed, "is_dtensor", lambda t: t is x)
    monkeypatch.setattr(distributed, "local_block", lambda t: (t, (6, 5), (4, 0)))
    with pytest.raises(InitError, match="a DTensor carries its own global shape and offsets"):
        jobs.prepare(x, "normal", {}, seed=0, offsets=(0, 0))
    job = jobs.prepare(x, "normal", {}, seed=0)
    assert (job.full_shape, job.offsets) == ((6, 5), (4, 0))


def test_a_job_with_nothing_to_write():
    for array in (np.empty((0, 4), np.float32), torch.empty(3, 4, device="meta")):
        job = jobs.prepare(array, "normal", {}, seed=0)
        assert not job.writes and job.numel == math.prod(array.shape)


class Recorder:
    """A backend that records what it is handed."""

    def __init__(self, name):
        self.NAME, self.calls = name, []

    def fill(self, job):
        self.calls.append(("fill", [job.name]))

    def fill_group(self, group):
        self.calls.append(("fill_group", [job.name for job in group]))


def job(name, backend, shape=(4,)):
    array = np.empty(shape, np.float32)
    return jobs.Job(array, draws.constant(1.0), shape, (0,) * len(shape), 0, 0, backend, None, name)


def test_run_groups_per_backend():
    a, b = Recorder("numpy"), Recorder("triton")
    work = [job("a0", a), job("b0", b), job("a1", a), job("empty", a, (0,)), job("a2", a), job("b1", b)]
    jobs.run(work)
    assert a.calls == [("fill_group", ["a0", "a1", "a2"])]
    assert b.calls == [("fill_group", ["b0", "b1"])]


def test_run_hands_a_job_alone_to_fill():
    a, b = Recorder("numpy"), Recorder("cupy")
    jobs.run([job("a0", a), job("b0", b), job("b-empty", b, (3, 0))])
    assert a.calls == [("fill", ["a0"])] and b.calls == [("fill", ["b0"])]
    jobs.run([])
    jobs.run([job("nothing", a, (0, 2))])
    assert a.calls == [("fill", ["a0"])]


@pytest.mark.parametrize("n", [1, 2, 19, 20, 21, 45])
def test_run_reports_progress_per_slice_of_cpu_work(n):
    host, gpu = Recorder("numpy"), Recorder("triton")
    work = [job(f"h{i}", host, (i + 1,)) for i in range(n)] + [job("g", gpu), job("g2", gpu)]
    seen = []
    jobs.run(work, on_progress=lambda elements, name: seen.append((elements, name)))
    step = max(1, n // 20)
    slices = [list(range(i, min(i + step, n))) for i in range(0, n, step)]
    assert seen == [(sum(i + 1 for i in s), f"h{s[-1]}") for s in slices]
    assert host.calls == [("fill" if len(s) == 1 else "fill_group", [f"h{i}" for i in s]) for s in slices]
    assert gpu.calls == [("fill_group", ["g", "g2"])]  # not sliced, no progress


def test_staged_is_host_work():
    assert set(jobs.HOST_BACKENDS) == {"numpy", "staged"}
    staged = Recorder("staged")
    seen = []
    jobs.run([job("s0", staged), job("s1", staged)], on_progress=lambda e, name: seen.append((e, name)))
    assert seen == [(4, "s0"), (4, "s1")]


def test_run_writes_through_the_real_backend():
    xs = [np.full((3, 4), np.nan, np.float32), np.full((5,), np.nan, np.float32), np.empty((0, 2), np.float32)]
    work = [jobs.prepare(x, "constant", {"value": v}, seed=0) for x, v in zip(xs, (1.5, -2.0, 3.0), strict=True)]
    jobs.run(work)
    assert np.all(xs[0] == 1.5) and np.all(xs[1] == -2.0)


def test_jobs_are_compared_by_identity():
    x = np.empty(3, np.float32)
    one, two = (jobs.prepare(x, "normal", {}, seed=0) for _ in range(2))
    assert one != two and one == one and len({one, two}) == 2
    with pytest.raises(AttributeError):
        one.seed = 1  # frozen: a job is what prepare checked


def test_checked_calls_tell_signed_zeros_and_nans_apart():
    """A call's checks are taken from the table only for the same parameters: a constant -0.0 after 0.0 writes
    -0.0 (its draw is its own), and a NaN, refused once, is refused again (never taken as checked)."""
    for make in (lambda: np.empty(6, np.float32), lambda: torch.empty(6), lambda: torch.empty(6, dtype=torch.bfloat16)):
        for value in (0.0, -0.0, 0.0):
            x = make()
            gpuinit.init_(x, "constant", value=value)
            x = x.float().numpy() if hasattr(x, "numpy") and not isinstance(x, np.ndarray) else x
            assert np.all(x == 0) and np.all(np.signbit(x) == (str(value) == "-0.0")), (make, value)
        for _ in range(2):
            with pytest.raises(gpuinit.InitError):
                gpuinit.init_(make(), "normal", std=float("nan"))


def test_a_planned_draw_is_reused_only_for_the_same_typed_parameters():
    """Draws are planned once per (scheme, parameters, shape, axes, dtype); a parameter of another type is planned
    (and checked) again: True is refused where 1 was taken, and equal draws come back for equal requests."""
    a = np.empty((8, 4), np.float32)
    first = jobs.prepare(a, "kaiming_uniform", {"a": 1}, seed=0).draw
    assert jobs.prepare(np.empty((8, 4), np.float32), "kaiming_uniform", {"a": 1}, seed=1).draw is first
    assert jobs.prepare(a, "kaiming_uniform", {"a": 1.0}, seed=0).draw == first  # the same numbers
    with pytest.raises(ValueError, match="negative_slope True not a valid number"):  # as without a plan before
        jobs.prepare(a, "kaiming_uniform", {"a": True}, seed=0)
    other = jobs.prepare(np.empty((8, 4), np.float16), "kaiming_uniform", {"a": 1}, seed=0).draw
    assert other is not first  # fitted to float16
    wide = jobs.prepare(np.empty((8, 40), np.float32), "kaiming_uniform", {"a": 1}, seed=0).draw
    assert wide.half_width < first.half_width  # another fan_in


def test_only_plain_parameter_values_key_the_planned_draws():
    """A value whose type is not a plain number or string (a float subclass here; a tensor, whose repr rounds) is
    planned every time, never taken for another value that prints alike."""

    class Rounded(float):
        def __repr__(self):
            return "0.1"

    a, b = jobs._draw("normal", {"std": Rounded(0.1)}, (4, 4), 1, 0, (), "float32"), \
        jobs._draw("normal", {"std": Rounded(0.1000001)}, (4, 4), 1, 0, (), "float32")
    assert a.std == 0.1 and b.std == 0.1000001 and a is not b
    plain = jobs._draw("normal", {"std": 0.25}, (4, 4), 1, 0, (), "float32")
    assert jobs._draw("normal", {"std": 0.25}, (4, 4), 1, 0, (), "float32") is plain


def test_a_job_carries_the_host_kernel_s_way_to_write_it_found_when_checked():
    whole = torch.empty(6, 5, dtype=torch.bfloat16)
    job = jobs.prepare(whole, "normal", {}, seed=0)
    assert job.direct == (30, "bfloat16") and job.writes
    for array, kw in ((whole.t(), {}), (np.empty((6, 5), np.float64), {}), (np.empty(7, ">f4"), {}),
                      (np.empty(4, np.float32), {"full_shape": (8,), "offsets": (4,)})):
        assert jobs.prepare(array, "normal", {}, seed=0, **kw).direct is None  # written piece by piece
    assert jobs.prepare(torch.empty(3, device="meta"), "normal", {}, seed=0).direct is None
    again = jobs.prepare(torch.empty(6, 5, dtype=torch.bfloat16), "normal", {}, seed=0)  # from the table
    assert again.direct == job.direct and again.array is not job.array
    moved = job._replace(array=torch.empty(30, dtype=torch.bfloat16), full_shape=(30,), offsets=(0,))
    assert moved.direct is None and job._replace(seed=1).direct is None  # found for the array checked only
    twin = torch.empty(6, 5, dtype=torch.bfloat16)
    jobs.run([job, jobs.prepare(twin, "normal", {}, seed=0)._replace(seed=0)])  # with it and without it
    assert torch.equal(whole, twin)
    assert torch.equal(whole, gpuinit.init_(torch.empty(6, 5, dtype=torch.bfloat16), "normal", seed=0))


def test_an_inference_tensor_is_refused_outside_inference_mode_whatever_was_checked_before():
    """Whether an inference tensor may be written depends on the mode the call is made in, not on its signature: a
    normal tensor of the same signature, or the same tensor inside torch.inference_mode(), checked before, does not
    let it through outside (prepare, prepare_all, a Preparer's table)."""
    params = {}
    with torch.inference_mode():
        inner = [torch.empty(6, 5), torch.nn.Parameter(torch.empty(6, 5))]
        for array in inner:
            jobs.prepare(array, "normal", params, seed=0)
            jobs.prepare_all([(array, "normal", params, 0, "w")], seed=0)
    preparer = jobs.Preparer(0)
    for array in (torch.empty(6, 5), torch.nn.Parameter(torch.empty(6, 5))):
        jobs.prepare(array, "normal", params, seed=0)
        jobs.prepare_all([(array, "normal", params, 0, "w")], seed=0)
        preparer(array, "normal", params, 0, "w")
    for array in inner:
        with pytest.raises(InitError, match="^w: an inference tensor"):
            jobs.prepare(array, "normal", params, seed=0, name="w")
        with pytest.raises(InitError, match="^w: an inference tensor"):
            jobs.prepare_all([(torch.empty(6, 5), "normal", params, 0, "v"), (array, "normal", params, 1, "w")], seed=0)
        with pytest.raises(InitError, match="^w: an inference tensor"):
            preparer(array, "normal", params, 1, "w")


DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA"))]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("kind", [torch.Tensor, torch.nn.Parameter])
def test_a_preparer_takes_a_model_s_tensor_checked_before_from_the_table_of_checked_calls(device, kind, monkeypatch):
    """The Preparer's inline path (a model's CPU or CUDA tensor) keys the table as ``prepare`` does: a tensor of a
    signature checked before is not checked again, and its job is the one ``prepare`` gives."""
    params, new = {"std": 0.02}, (lambda *shape: kind(torch.empty(*shape, device=device)))
    first = jobs.prepare(new(6, 5), "normal", params, seed=3, stream=9, name="a")
    preparer = jobs.Preparer(3)

    def no_check(*args):
        raise AssertionError("checked again")

    monkeypatch.setattr(jobs, "_checked", no_check)
    for _ in range(2):  # the table, then the preparer's own
        array = new(6, 5)
        job = preparer(array, "normal", params, 9, "b")
        assert job.array is array and (job.seed, job.stream, job.name) == (3, 9, "b")
        assert (job.draw, job.full_shape, job.offsets, job.backend, job.direct) == \
            (first.draw, first.full_shape, first.offsets, first.backend, first.direct)
    with pytest.raises(AssertionError, match="checked again"):  # another signature: checked
        preparer(new(5, 6), "normal", params, 9, "c")
