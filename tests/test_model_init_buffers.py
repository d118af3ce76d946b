"""gpuinit/model_init/buffers.py: plan_buffers restores buffers as their modules define them, then a rule; a meta
buffer that nothing restores is an error."""
import pytest
import torch
from model_init_models import Tied, meta
from torch import nn

import gpuinit
from gpuinit import InitError
from gpuinit.model_init.buffers import plan_buffers
from gpuinit.model_init.names import tied
from gpuinit.model_init.rules import check_rules


def plan(module, rules=(), was_meta=False):
    return plan_buffers(module, check_rules(list(rules)), tied(module, "buffers"), was_meta)


def run(actions, root):
    with torch.no_grad():
        for action in actions:
            action(root)


class Rotary(nn.Module):
    """A parameter-free module with a table, restored by reset_buffers()."""

    def __init__(self, n=4):
        super().__init__()
        self.register_buffer("inv_freq", torch.empty(n))
        self.reset_buffers()

    def reset_buffers(self):
        self.inv_freq.copy_(1.0 / 10000 ** (torch.arange(self.inv_freq.numel(), dtype=torch.float32) / 8))


class HFRotary(nn.Module):
    """A Hugging Face-style rotary embedding: no parameters, no reset method; the model's _init_weights restores it."""

    def __init__(self):
        super().__init__()
        self.register_buffer("inv_freq", torch.empty(4))


class HFModel(nn.Module):
    def __init__(self):
        super().__init__()
        self.proj = nn.Linear(4, 4)
        self.rotary = HFRotary()
        self.seen = []

    def _init_weights(self, module):
        self.seen.append(module)
        if isinstance(module, HFRotary):
            module.inv_freq.fill_(0.25)


def test_batch_norm_reset_running_stats():
    m = nn.Sequential(nn.Linear(3, 3), nn.BatchNorm1d(3))
    m(torch.randn(5, 3))  # training mode: the running stats move
    assert not m[1].running_mean.eq(0).all() and m[1].num_batches_tracked.item() == 1
    actions, ruled = plan(m)
    assert len(actions) == 1 and ruled == []
    weight = m[0].weight.clone()
    run(actions, m)
    assert m[1].running_mean.eq(0).all() and m[1].running_var.eq(1).all()
    assert m[1].num_batches_tracked.item() == 0
    assert torch.equal(m[0].weight, weight)  # parameters are not buffers' business


def test_reset_buffers():
    m = nn.Sequential(nn.Linear(3, 3), Rotary())
    expected = m[1].inv_freq.clone()
    m[1].inv_freq.fill_(float("nan"))
    actions, ruled = plan(m, was_meta=True)
    assert len(actions) == 1 and ruled == []
    run(actions, m)
    assert torch.equal(m[1].inv_freq, expected)


def test_actions_act_on_the_module_planned_once_materialized():
    """An action restores the module it was planned for: materializing keeps the module objects (their tensors
    change), and a wrapper's canonical name would not find it by name in the root."""
    m = meta(nn.BatchNorm1d, 3)
    actions, _ = plan(m, was_meta=True)
    m.to_empty(device="cpu")
    m.running_var.fill_(5.0)
    run(actions, m)
    assert m.running_var.eq(1).all() and m.running_mean.eq(0).all()


def test_hugging_face_parameter_free_module_restored_by_init_weights():
    m = HFModel()
    actions, ruled = plan(m, was_meta=True)
    assert len(actions) == 1 and ruled == []
    run(actions, m)
    assert m.seen == [m.rotary]  # only the parameter-free module: proj has parameters and no buffers
    assert m.rotary.inv_freq.eq(0.25).all()


def test_hugging_face_module_with_parameters_is_not_restored_by_init_weights():
    m = HFModel()
    m.proj.register_buffer("mask", torch.ones(4))
    with pytest.raises(InitError, match=r"no way to restore the buffers proj\.mask after materializing"):
        plan(m, was_meta=True)


def test_a_rule_after_the_restores():
    m = nn.Sequential(nn.BatchNorm1d(3), Rotary())
    actions, ruled = plan(m, [("*.running_var", "constant", {"value": 2.0}), ("1.inv_freq", "ones")])
    assert len(actions) == 2  # a rule does not take a module's restore away: it runs after it
    assert ruled == [("0.running_var", ("constant", {"value": 2.0})), ("1.inv_freq", ("ones", {}))]


def test_a_rule_after_the_restores_wins_in_the_model():
    with torch.device("meta"):
        m = nn.Sequential(nn.BatchNorm1d(3), Rotary())
    gpuinit.init_module(m, seed=0, device="cpu", rules=[("*.running_var", "constant", {"value": 2.0})])
    assert m[0].running_var.eq(2).all() and m[0].running_mean.eq(0).all()
    assert torch.equal(m[1].inv_freq, Rotary().inv_freq)


def test_an_unrestorable_meta_buffer_is_an_error():
    m = nn.Module()
    m.lin = nn.Linear(2, 2)
    m.lin.register_buffer("mask", torch.ones(2))
    m.register_buffer("scale", torch.ones(1))
    m.rot = Rotary()
    with pytest.raises(InitError, match=r"^no way to restore the buffers scale, lin\.mask after materializing from "
                                        r"the meta device: give their module a reset_buffers\(\) method, or add a "
                                        r"rule naming them"):
        plan(m, was_meta=True)
    actions, ruled = plan(m, was_meta=False)  # a built module keeps the values it has
    assert len(actions) == 1 and ruled == []
    with pytest.raises(InitError, match=r"buffers scale after"):  # the one no rule names
        plan(m, [("lin.mask", "zeros")], was_meta=True)
    _, ruled = plan(m, [("lin.mask", "zeros"), ("scale", "ones")], was_meta=True)
    assert ruled == [("scale", ("ones", {})), ("lin.mask", ("zeros", {}))]  # in module order


def test_a_tied_buffer_is_planned_once_under_its_first_name():
    m = Tied()
    with pytest.raises(InitError, match=r"the buffers emb\.table after"):  # not head.table as well
        plan(m, was_meta=True)
    _, ruled = plan(m, [("head.table", "ones")], was_meta=True)
    assert ruled == [("emb.table", ("ones", {}))]
