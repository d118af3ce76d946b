"""gpuinit/model_init/rules.py: rules checked with their errors, which rule fills which parameter or buffer, the
check that every pattern names something."""
import pytest
from model_init_models import Tied
from torch import nn

from gpuinit import InitError
from gpuinit.model_init.names import tied
from gpuinit.model_init.rules import buffer_rule, check_patterns, check_rules, param_rule, ruled


def test_check_rules_normalizes():
    params = {"std": 0.02}
    out = check_rules([("a.*", "normal", params), ["b", "zeros"]])
    assert out == [("a.*", "normal", {"std": 0.02}), ("b", "zeros", {})]
    assert out[0][2] is not params  # a copy: the caller's dict is not the rule's
    assert check_rules(out) == out  # checked rules pass through
    assert check_rules(None) == [] and check_rules([]) == []
    assert check_rules(iter([("a", "ones")])) == [("a", "ones", {})]


@pytest.mark.parametrize("rules", ["*.weight", b"*.weight", {"*.weight": "zeros"}, 3])
def test_check_rules_wants_a_list_of_rules(rules):
    with pytest.raises(InitError, match=r"rules must be a list of \(name pattern, scheme\[, params\]\) rules"):
        check_rules(rules)


@pytest.mark.parametrize("rule", ["*.weight", ("*.weight",), ("*.weight", "normal", {}, 1), (3, "zeros"), None])
def test_a_rule_is_two_or_three_items_with_a_pattern(rule):
    with pytest.raises(InitError, match=r"a rule is \(name pattern, scheme\) or \(name pattern, scheme, params dict\)"):
        check_rules([rule])


def test_messages_quote_rules_abbreviated():
    huge = list(range(10**6))
    for call in (lambda: check_rules([huge]), lambda: check_rules([("w", "normal", huge)]),
                 lambda: check_rules([("w", "x" * 10**6)]), lambda: check_rules({"k" * 10**6: "zeros"}),
                 lambda: check_patterns([("x" * 10**6, "zeros", {})], ["w"], [])):
        with pytest.raises(InitError) as e:
            call()
        assert len(str(e.value)) < 1000  # with the known schemes' names


def test_a_rule_s_params_are_a_dict():
    with pytest.raises(InitError, match=r"a rule's params are a dict .* got 0\.02 in rule \('w', 'normal', 0\.02\)"):
        check_rules([("w", "normal", 0.02)])


def test_a_rule_s_scheme_must_exist():
    with pytest.raises(InitError, match="unknown scheme"):
        check_rules([("w", "ones"), ("v", "no_such_scheme")])


def test_param_rule_first_match_over_every_name():
    rules = check_rules([("head.*", "zeros"), ("emb.*", "ones"), ("*", "normal", {"std": 2.0})])
    assert param_rule(["emb.weight", "head.weight"], rules) == ("zeros", {})  # the first rule, by an alias
    assert param_rule(["emb.weight"], rules) == ("ones", {})
    assert param_rule(["mid.bias"], rules) == ("normal", {"std": 2.0})
    assert param_rule(["Emb.weight"], rules[1:2]) is None  # patterns are case-sensitive
    assert param_rule(["mid.bias"], []) is None


def test_buffer_rule_only_when_the_pattern_spells_the_buffer_s_last_name():
    names = ["bn.running_mean"]
    assert buffer_rule(names, check_rules([("*", "zeros")])) is None
    assert buffer_rule(names, check_rules([("*.running_*", "zeros")])) is None
    assert buffer_rule(names, check_rules([("bn.*", "zeros")])) is None
    assert buffer_rule(names, check_rules([("running_mean", "zeros")])) is None  # spelled, but not a match
    assert buffer_rule(names, check_rules([("*", "zeros"), ("*.running_mean", "ones")])) == ("ones", {})
    assert buffer_rule(names, check_rules([("bn.running_mean", "constant", {"value": 3.0})])) == (
        "constant", {"value": 3.0})
    # a tied buffer whose names share the last component: a rule naming either alias fills it
    assert buffer_rule(["a.table", "b.table"], check_rules([("b.table", "ones")])) == ("ones", {})


def test_check_patterns_accepts_parameters_and_spelled_buffers():
    m = nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2))
    params, buffers = tied(m), tied(m, "buffers")
    check_patterns(check_rules([("*", "zeros"), ("0.*", "ones"), ("*.running_var", "ones"),
                                ("1.num_batches_tracked", "zeros")]), params, buffers)


def test_check_patterns_refuses_what_matches_nothing():
    m = nn.Module()
    m.proj, m.norm = nn.Linear(2, 2), nn.BatchNorm1d(2)
    params, buffers = tied(m), tied(m, "buffers")
    with pytest.raises(InitError, match=r"the rule pattern 'proj\.wieght' matches no parameter or buffer of the "
                                        r"module; did you mean 'proj\.weight'"):  # the closest first
        check_patterns(check_rules([("proj.wieght", "zeros")]), params, buffers)
    with pytest.raises(InitError, match=r"did you mean 'norm\.running_var'"):  # buffer names are offered too
        check_patterns(check_rules([("norm.running_vra", "zeros")]), params, buffers)
    with pytest.raises(InitError, match=r"'norm\.running_\*' matches no parameter or buffer of the module"):
        check_patterns(check_rules([("norm.running_*", "zeros")]), params, buffers)  # a wildcard means parameters
    with pytest.raises(InitError, match=r"'zzz' matches no parameter or buffer of the module$"):  # nothing close
        check_patterns(check_rules([("zzz", "zeros")]), params, buffers)
    with pytest.raises(InitError, match="'2.weight'"):  # the first bad pattern of several
        check_patterns(check_rules([("proj.weight", "zeros"), ("2.weight", "ones")]), params, buffers)


def test_check_patterns_hint_names_up_to_three_close_names():
    m = nn.Sequential(*[nn.Linear(2, 2) for _ in range(4)])
    with pytest.raises(InitError, match=r"did you mean '\d\.weight' or '\d\.weight' or '\d\.weight'\?$"):
        check_patterns(check_rules([("5.weight", "zeros")]), tied(m), {})


def test_ruled_fills_a_tied_tensor_once_under_its_owner_name():
    m = Tied()
    params, buffers = tied(m), tied(m, "buffers")
    rules = check_rules([("head.weight", "zeros"), ("mid.*", "ones"), ("head.table", "constant", {"value": 2.0})])
    assert ruled(params, rules) == [("emb.weight", ("zeros", {})), ("mid.weight", ("ones", {})),
                                    ("mid.bias", ("ones", {}))]
    assert ruled(buffers, rules, buffers=True) == [("emb.table", ("constant", {"value": 2.0}))]
    assert ruled(buffers, check_rules([("*", "ones")]), buffers=True) == []
