"""gpuinit/draws.py: the typed draws (one frozen dataclass per kind), their constructors' checks, fit to a dtype,
and the parameter vectors in the order the kernels read them."""
import dataclasses
import inspect
import math
import re

import numpy as np
import pytest

from gpuinit import draws, launch_layout
from gpuinit.backends import cpu_kernel, cupy_backend
from gpuinit.errors import InitError

KINDS = {draws.Uniform: "uniform", draws.Normal: "normal", draws.TruncNormal: "trunc_normal",
         draws.Constant: "constant", draws.Eye: "eye", draws.Dirac: "dirac", draws.Orthogonal: "orthogonal",
         draws.DeltaOrthogonal: "delta_orthogonal", draws.Sparse: "sparse", draws.Parts: "parts",
         draws.Words: "words"}
EXAMPLES = [draws.uniform(-0.3, 0.9), draws.normal(0.5, 2.0), draws.trunc_normal(0.0, 1.0, -2.0, 2.0),
            draws.trunc_normal(1.0, 2.0, 5.5, 9.0), draws.constant(0.37), draws.eye(1.7), draws.dirac(2),
            draws.orthogonal(2.0, 1, [0]), draws.delta_orthogonal(1.5, 1, 0), draws.sparse(0.3, 0.7),
            draws.Parts(draws.uniform(0.0, 0.1), draws.constant(0.0))]


# ---- the types -----------------------------------------------------------------------------------------------

def test_each_kind_is_a_frozen_dataclass_naming_its_kind():
    assert set(draws.Draw.__args__) | {draws.Words} == set(KINDS)
    for cls, kind in KINDS.items():
        assert dataclasses.is_dataclass(cls) and cls.__dataclass_params__.frozen, cls
        assert cls.kind == kind and "kind" not in {f.name for f in dataclasses.fields(cls)}, cls
    assert {type(d) for d in EXAMPLES} == set(KINDS) - {draws.Words}
    assert draws.WORDS.kind == "words" and draws.WORDS == draws.Words()
    assert set(draws.ELEMENTWISE) == {"uniform", "normal", "trunc_normal"}


@pytest.mark.parametrize("draw", EXAMPLES, ids=lambda d: d.kind)
def test_draws_are_immutable_and_hashable(draw):
    field = dataclasses.fields(draw)[0].name
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(draw, field, 1)
    with pytest.raises(dataclasses.FrozenInstanceError):
        draw.kind = "normal"
    assert hash(draw) == hash(dataclasses.replace(draw)) and draw == dataclasses.replace(draw)
    assert {draw: 1}[dataclasses.replace(draw)] == 1


def test_constructors_compute_the_fields():
    assert draws.uniform(-0.5, 1.5) == draws.Uniform(center=0.5, half_width=1.0, lo=-0.5, hi=1.5)
    u = draws.uniform(0.0, 0.1)  # 0.1 is no float32: hi is the largest float32 below it
    assert u.hi == float(np.nextafter(np.float32(0.1), np.float32(0))) and u.hi < 0.1 and u.lo == 0.0
    assert draws.normal(np.float32(0.5), 2) == draws.Normal(mean=0.5, std=2.0)
    assert type(draws.normal(0, 1).std) is float and type(draws.dirac(np.int64(3)).groups) is int
    t = draws.trunc_normal(0.0, 1.0, -2.0, 2.0)
    assert (t.mean, t.std, t.lo, t.hi, t.flip, t.branches) == (0.0, 1.0, -2.0, 2.0, False, 1)
    assert math.isclose(t.p_lo, 0.022750131948179195) and math.isclose(t.p_span, 1 - 2 * t.p_lo)
    assert (t.z_lo, t.z_hi) == (-2.0, 2.0)
    f = draws.trunc_normal(1.0, 2.0, 5.5, 9.0)  # in the upper tail: mirrored into the lower one
    assert f.flip and (f.z_lo, f.z_hi) == (-4.0, -2.25) and (f.lo, f.hi) == (5.5, 9.0) and f.branches == 2
    assert draws.trunc_normal(0.0, 1.0, -8.5, -8.0).branches == 3
    assert draws.orthogonal(2, 1, [0]) == draws.Orthogonal(gain=2.0, out_axis=1, batch_axis=(0,))
    assert draws.sparse(1, 0) == draws.Sparse(sparsity=1.0, std=0.0)
    assert draws.constant(-3) == draws.Constant(value=-3.0) and draws.eye() == draws.Eye(gain=1.0)
    assert draws.dirac() == draws.Dirac(groups=1)


@pytest.mark.parametrize("make,message", [
    (lambda: draws.constant(None), "value must be a real number, got None"),
    (lambda: draws.constant(True), "value must be a real number, got True"),
    (lambda: draws.constant(float("nan")), "value must be finite, got nan"),
    (lambda: draws.uniform("0", 1), "low must be a real number, got '0'"),
    (lambda: draws.uniform(0, math.inf), "high must be finite, got inf"),
    (lambda: draws.uniform(1, 1), "uniform needs low < high, got low=1.0, high=1.0"),
    (lambda: draws.normal(0, -1), "std must be >= 0, got -1.0"),
    (lambda: draws.normal([0], 1), "mean must be a real number, got [0]"),
    (lambda: draws.trunc_normal(0, 0, -1, 1), "std must be > 0, got 0.0"),
    (lambda: draws.trunc_normal(0, 1, float("nan"), 1), "a must be a real number, got nan"),
    (lambda: draws.trunc_normal(0, 1, -1, None), "b must be a real number, got None"),
    (lambda: draws.trunc_normal(0, 1, 1, -1), "trunc_normal needs a < b, got a=1.0, b=-1.0"),
    (lambda: draws.trunc_normal(0, 1, 9.5, 12), "[a, b] = [9.5, 12.0] lies more than 9 std from the mean 0.0"),
    (lambda: draws.eye(math.inf), "gain must be finite, got inf"),
    (lambda: draws.dirac(0), "groups must be a positive integer, got 0"),
    (lambda: draws.dirac(2.0), "groups must be a positive integer, got 2.0"),
    (lambda: draws.dirac(True), "groups must be a positive integer, got True"),
    (lambda: draws.orthogonal("1", 0, ()), "gain must be a real number, got '1'"),
    (lambda: draws.sparse(1.5, 0.01), "sparsity must lie in [0, 1], got 1.5"),
    (lambda: draws.sparse(0.5, -0.01), "std must be >= 0, got -0.01"),
])
def test_constructor_checks(make, message):
    with pytest.raises(InitError) as e:
        make()
    assert str(e.value) == message


def test_numpy_and_torch_0d_numbers_are_numbers():
    """0-d NumPy arrays, NumPy scalars and 0-d torch tensors of a real dtype are taken as the number they hold;
    bool, complex, non-finite and larger arrays are refused, quoted with short_repr."""
    torch = pytest.importorskip("torch")
    for value in (np.asarray(0.5, np.float32), np.float32(0.5), np.asarray(0.5), np.float16(0.5),
                  torch.tensor(0.5), torch.tensor(0.5, dtype=torch.float64)):
        assert draws.normal(0.0, value) == draws.Normal(mean=0.0, std=0.5), value
        assert draws.trunc_normal(0.0, 1.0, value, 1.0).lo == 0.5
    assert draws.uniform(np.asarray(-1), np.asarray(3, np.uint8)) == draws.uniform(-1, 3)
    assert draws.dirac(np.asarray(2)) == draws.Dirac(groups=2)
    for bad, shown in [(np.asarray(True), "array(True)"), (np.bool_(True), "np.True_"),
                       (np.asarray(1 + 2j, np.complex64), "array(1.+2.j, dtype=complex64)"),
                       (np.complex128(1), "np.complex128(1+0j)"), (np.asarray([0.5]), "array([0.5])"),
                       (torch.tensor(True), "tensor(True)"), (torch.tensor([0.5]), "tensor([0.5000])")]:
        with pytest.raises(InitError, match=re.escape(f"std must be a real number, got {shown}")):
            draws.normal(0.0, bad)
    with pytest.raises(InitError, match="std must be finite, got inf"):
        draws.normal(0.0, np.asarray(np.inf, np.float32))
    with pytest.raises(InitError, match="a must be a real number, got array"):
        draws.trunc_normal(0.0, 1.0, np.asarray(np.nan), 1.0)
    with pytest.raises(InitError) as e:
        draws.normal(0.0, np.asarray(list(range(10_000)), dtype=object).reshape(1, -1))
    assert len(str(e.value)) < 400  # capped


def test_infinite_truncation_bounds_are_allowed():
    t = draws.trunc_normal(0.0, 1.0, -math.inf, 0.0)
    assert t.lo == -math.inf and t.hi == 0.0 and t.p_lo == 0.0 and t.p_span == 0.5


# ---- fit to a dtype --------------------------------------------------------------------------------------------

def _on_grid(x, dtype):
    """x is a value of ``dtype`` (float16 or bfloat16)."""
    if dtype == "float16":
        return float(np.float16(x)) == x
    return np.array(x, np.float32).view(np.uint32) & 0xFFFF == 0


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
@pytest.mark.parametrize("draw", [draws.uniform(-0.1, 0.3), draws.uniform(1.0, 1.001),
                                  draws.trunc_normal(0.0, 0.02, -0.04, 0.04), draws.trunc_normal(1.0, 2.0, 5.5, 9.0),
                                  draws.trunc_normal(0.0, 1.0, -math.inf, math.inf)],
                         ids=lambda d: f"{d.kind}-{d.lo:g}-{d.hi:g}")
def test_fit_rounds_the_clamp_inward_to_the_dtype(draw, dtype):
    fitted = draws.fit(draw, dtype)
    assert type(fitted) is type(draw) and fitted is not draw
    assert dataclasses.replace(fitted, lo=draw.lo, hi=draw.hi) == draw  # only the clamp changes
    assert _on_grid(fitted.lo, dtype) and _on_grid(fitted.hi, dtype)
    a, b = max(draw.lo, -draws.DTYPE_MAX[dtype]), min(draw.hi, draws.DTYPE_MAX[dtype])
    assert a <= fitted.lo <= fitted.hi <= b
    step = 2.0**-10 if dtype == "float16" else 2.0**-7  # relative spacing: the bounds are the nearest inside
    assert fitted.lo - a <= step * abs(fitted.lo) + 1e-7 and b - fitted.hi <= step * abs(fitted.hi) + 1e-7
    assert draws.fit(draw, "float32") == draws.fit(draw, "float64") == dataclasses.replace(
        draw, lo=max(draw.lo, -draws.DTYPE_MAX["float32"]), hi=min(draw.hi, draws.DTYPE_MAX["float32"]))


def test_fit_examples():
    assert draws.fit(draws.uniform(-0.1, 0.3), "float16") == dataclasses.replace(
        draws.uniform(-0.1, 0.3), lo=float(np.float16(-0.0999755859375)), hi=float(np.float16(0.2998046875)))
    assert draws.fit(draws.uniform(-0.1, 0.3), "bfloat16") == dataclasses.replace(
        draws.uniform(-0.1, 0.3), lo=-0.099609375, hi=0.298828125)


@pytest.mark.parametrize("draw", [d for d in EXAMPLES if d.kind not in ("uniform", "trunc_normal", "parts")],
                         ids=lambda d: d.kind)
@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "float32", "float64"])
def test_fit_keeps_the_other_kinds(draw, dtype):
    assert draws.fit(draw, dtype) is draw


def test_fit_fits_each_part():
    real, imag = draws.uniform(0.0, 0.1), draws.normal(0.0, 2.0)
    for dtype in ("float16", "float32"):
        assert draws.fit(draws.Parts(real, imag), dtype) == draws.Parts(draws.fit(real, dtype), draws.fit(imag, dtype))
    with pytest.raises(InitError, match="value 100000 does not fit float16"):
        draws.fit(draws.Parts(draws.constant(1e5), draws.constant(0.0)), "float16")


@pytest.mark.parametrize("draw,dtype,message", [
    (draws.constant(1e5), "float16", "value 100000 does not fit float16 (largest finite value 65504)"),
    (draws.eye(-7e4), "float16", "gain 70000 does not fit float16 (largest finite value 65504)"),
    (draws.orthogonal(1e39, 0, ()), "float64", "gain 1e+39 does not fit float32, in which random draws are computed"),
    (draws.normal(6e4, 1e3), "float16", "the draw's largest value, |mean| + 5.77 std, 65768.2 does not fit float16"),
    (draws.sparse(0.5, 2e4), "float16", "the draw's largest value, |mean| + 5.77 std, 115362 does not fit float16"),
    (draws.uniform(-1e39, 1e39), "float64", "uniform's half width 1e+39 does not fit float32"),
    (draws.uniform(-3.0, 7e4), "float16", "uniform: values reach [-3, 70000], beyond the largest finite value of "
                                          "float16, 65504"),
    (draws.uniform(0.1, 0.10001), "float16", "uniform: no float16 value lies in [0.1, 0.10001]"),
    (draws.trunc_normal(0.0, 1.0, 0.0, 0.001), "float32", "trunc_normal: [a, b] is too narrow against std"),
    (draws.trunc_normal(0.0, 1e4, -1e5, 1e5), "float16", "trunc_normal: values reach [-96700, 96700]"),
])
def test_fit_refusals(draw, dtype, message):
    with pytest.raises(InitError) as e:
        draws.fit(draw, dtype)
    assert str(e.value).startswith(message), str(e.value)


def test_expected_std():
    assert draws.expected_std(draws.constant(3.0)) == 0.0
    assert draws.expected_std(draws.uniform(-1.0, 1.0)) == 1 / math.sqrt(3)
    assert draws.expected_std(draws.normal(5.0, 0.25)) == 0.25
    assert math.isclose(draws.expected_std(draws.trunc_normal(0.0, 2.0, -4.0, 4.0)), 2 * 0.87962566103423978,
                        rel_tol=1e-7)
    assert draws.expected_std(draws.eye(1.0)) is None and draws.expected_std(draws.sparse(0.5, 1.0)) is None


# ---- the kernels' parameter vectors ------------------------------------------------------------------------

def _gi_params_fields():
    """(int fields, float fields) of the C header's gi_params, in order."""
    body = re.search(r"typedef struct \{(.*?)\} gi_params;", cupy_backend.HEADER.read_text(), re.S).group(1)
    body = re.sub(r"/\*.*?\*/", "", body, flags=re.S)
    fields = {"int": [], "float": []}
    for ctype, names in re.findall(r"\b(int|float)\s+([\w\s,]+);", body):
        fields[ctype] += [n.strip() for n in names.split(",")]
    return fields["int"], fields["float"]


def test_parameter_vector_order_is_the_kernels():
    names = draws.KernelParams._fields
    ints, floats = _gi_params_fields()
    assert ints == ["kind", "flip"] and tuple(floats) == names[:8] and names[8] == "flip"  # the C kernels' struct
    assert [n for n, _ in cpu_kernel.Params._fields_] == [*ints, *floats]  # the host kernel's ctypes mirror of it
    assert launch_layout.GI_GROUP_PARAMS.LEN == 8  # the CUDA grouped kernel's parameter rows
    assert launch_layout.GROUP_ROW.LEN - launch_layout.GROUP_ROW.PARAMS == 4  # Triton's: two float32 to a word


def test_parameter_vector_order_is_the_triton_kernels():
    pytest.importorskip("triton")
    from gpuinit.kernels import triton_fill as kt

    args = list(inspect.signature(kt.fill_kernel.fn).parameters)
    first = args.index("scale")
    assert tuple(args[first:first + 8]) == draws.KernelParams._fields[:8] == kt.VALUE_ARGS[4:]


@pytest.mark.parametrize("draw,want", [
    (draws.uniform(-0.5, 1.5), (1.0, 0.5, -0.5, 1.5, 0.0, 0.0, 0.0, 0.0, 0)),
    (draws.normal(0.5, 2.0), (2.0, 0.5, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0)),
    (draws.WORDS, (1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0)),
])
def test_kernel_params(draw, want):
    assert draws.kernel_params(draw) == want and draws.folded_params(draw) == want[:8]


def test_trunc_normal_kernel_params_and_foldings():
    for d in (draws.trunc_normal(0.0, 1.0, -2.0, 2.0), draws.trunc_normal(1.0, 2.0, 5.5, 9.0)):
        p = draws.kernel_params(d)
        assert p == (d.std, d.mean, d.lo, d.hi, d.p_lo, d.p_span, d.z_lo, d.z_hi, int(d.flip))
        assert p.scale == d.std and p.flip == d.flip  # by name as by place
        folded = draws.folded_params(d)
        assert folded[0] == (-d.std if d.flip else d.std) and folded[1:5] == p[1:5] and folded[6:] == p[6:8]
        assert folded[5] == float(np.float32(d.p_span) * np.float32(2.0**-24))


def test_kernel_params_refuse_structured_draws():
    with pytest.raises(ValueError, match="no elementwise draw named 'eye'"):
        draws.kernel_params(draws.eye(1.0))


@pytest.mark.parametrize("draw", [d for d in EXAMPLES if d.kind in draws.ELEMENTWISE] + [draws.WORDS],
                         ids=lambda d: d.kind)
def test_host_kernel_struct_holds_the_vector(draw):
    c = cpu_kernel.params(draw)
    p = draws.kernel_params(draw)
    assert c.kind == {"uniform": 0, "normal": 1, "trunc_normal": 2, "words": 3}[draw.kind] and c.flip == p.flip
    assert all(getattr(c, n) == float(np.float32(getattr(p, n))) for n in p._fields[:8])


def test_erfinv_branches():
    assert draws.erfinv_branches(draws.trunc_normal(1.0, 2.0, 5.5, 9.0)) == 2
    assert draws.erfinv_branches(draws.uniform(0.0, 1.0)) == draws.erfinv_branches(draws.WORDS) == 3
