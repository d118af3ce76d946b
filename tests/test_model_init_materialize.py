"""gpuinit/model_init/materialize.py: a meta module given memory (or a built one moved), probed first, ties kept."""
import pytest
import torch
from model_init_models import Tied, meta
from torch import nn

from gpuinit import BackendUnavailableError, InitError
from gpuinit.model_init.materialize import materialize, probe
from gpuinit.model_init.names import tied

NO_DEVICE = f"cuda:{torch.cuda.device_count()}"  # no CUDA: torch refuses cuda:0; with CUDA, one past the last


def names(m):
    return tied(m), tied(m, "buffers")


def test_probe():
    probe(torch.device("cpu"), {torch.float16, torch.bfloat16, torch.float32, torch.float64})
    probe(torch.device("cpu"), set())
    with pytest.raises(InitError, match=r"^cannot fill torch\.float8_e4m3fn tensors on cpu: "):
        probe(torch.device("cpu"), {torch.float32, torch.float8_e4m3fn})
    with pytest.raises(BackendUnavailableError, match=f"^cannot materialize on {NO_DEVICE}: "):
        probe(torch.device(NO_DEVICE), {torch.float32})


def test_a_device_no_backend_fills_is_refused_before_anything_changes():
    m = meta(Tied)
    params = dict(m.named_parameters())
    with pytest.raises(BackendUnavailableError, match="cannot materialize"):
        materialize(m, NO_DEVICE, *names(m), meta=True)
    assert all(t.is_meta for t in [*m.parameters(), *m.buffers()])
    assert all(p is params[n] for n, p in m.named_parameters())


def test_a_dtype_no_backend_fills_is_refused_before_anything_changes():
    m = meta(nn.Linear, 2, 3, dtype=torch.float8_e4m3fn)
    with pytest.raises(InitError, match="cannot fill torch.float8_e4m3fn tensors on cpu"):
        materialize(m, "cpu", *names(m), meta=True)
    assert m.weight.is_meta and m.bias.is_meta


def test_integer_buffers_need_no_backend():
    m = meta(nn.BatchNorm1d, 3)  # num_batches_tracked: int64
    materialize(m, "cpu", *names(m), meta=True)
    assert m.num_batches_tracked.dtype == torch.int64 and not m.num_batches_tracked.is_meta


def test_ties_kept_after_to_empty():
    m = meta(Tied)
    materialize(m, "cpu", *names(m), meta=True)
    assert m.emb.weight.device.type == "cpu" and m.mid.bias.device.type == "cpu"
    assert m.head.weight is m.emb.weight
    assert m.head.table is m.emb.table
    assert tied(m) == tied(Tied()) and tied(m, "buffers") == tied(Tied(), "buffers")
    with torch.no_grad():
        m.emb.weight.fill_(3.0)
    assert m.head(torch.ones(1, 4)).eq(12.0).all()  # the head computes with the embedding's values


def test_to_empty_alone_unties():
    """What the retie is for: torch's to_empty gives each name its own tensor."""
    m = meta(Tied)
    m.to_empty(device="cpu")
    assert m.head.weight is not m.emb.weight


def test_a_built_module_is_moved_with_its_values():
    m = Tied()
    before = {n: t.clone() for n, t in m.state_dict().items()}
    materialize(m, "cpu", *names(m), meta=False)
    assert m.head.weight is m.emb.weight
    for n, t in m.state_dict().items():
        assert torch.equal(t, before[n]), n


def test_default_device():
    m = meta(nn.Linear, 2, 3)
    materialize(m, None, *names(m), meta=True)
    assert m.weight.device.type == ("cuda" if torch.cuda.is_available() else "cpu")


def test_a_meta_module_gets_what_to_empty_gives():
    """Materializing makes the tensors torch's ``to_empty`` makes (sizes, strides, dtypes, parameter types and
    requires_grad, buffers), contiguous ones by ``empty_strided`` and the others as ``to_empty`` does: transposed
    and channels-last parameters, a frozen one, size-1 dims with odd strides, integer and bfloat16 buffers."""
    def build():
        with torch.device("meta"):
            m = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.Linear(5, 7))
            m[0].weight = nn.Parameter(m[0].weight.to(memory_format=torch.channels_last))
            m[2].weight = nn.Parameter(torch.empty(5, 7).T, requires_grad=False)
            m.register_buffer("odd", torch.empty_strided((1, 4, 1), (99, 1, 7), dtype=torch.bfloat16))
            m.register_parameter("row", nn.Parameter(torch.empty(1, 6)))
            m.register_buffer("steps", torch.empty_strided((3, 1), (1, 5), dtype=torch.int64))
            m.register_parameter("ones", nn.Parameter(torch.empty_strided((1, 1, 1), (3, 9, 2))))
            m.register_buffer("scalar", torch.empty(()))
        return m

    want, got = build().to_empty(device="cpu"), build()
    materialize(got, "cpu", *names(got), meta=True)

    def described(m):
        return {k: (tuple(v.shape), v.stride(), v.dtype, type(v), v.requires_grad, v.device)
                for k, v in m.state_dict(keep_vars=True).items()}

    assert described(got) == described(want)
    assert got[0].weight.is_contiguous(memory_format=torch.channels_last) and not got[2].weight.is_contiguous()
