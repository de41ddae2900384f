import dataclasses

import pytest

from nst_plugin.engine.errors import InputError
from nst_plugin.params import Param, options_from_params, params_from_fields, validate_params


def test_coerces_strings_as_hosts_pass_them():
    assert Param("n", "int", 1, "").validate("12") == 12
    assert Param("x", "float", 1.0, "").validate("0.25") == 0.25
    assert Param("b", "bool", False, "").validate("yes") is True
    assert Param("w", "floats", [], "").validate("1, 2 3") == [1.0, 2.0, 3.0]


@pytest.mark.parametrize(
    ("param", "value", "message"),
    [
        (Param("alpha", "float", 1.0, "", min=0.0, max=1.0), 1.5, "'alpha' must be within 0..1"),
        (Param("steps", "int", 1, "", min=1), 2.5, "'steps' must be of type int"),
        (Param("opt", "choice", "a", "", choices=("a", "b")), "c", "one of 'a', 'b'"),
        (Param("b", "bool", False, ""), "maybe", "'b' must be of type bool"),
        (Param("x", "float", 1.0, ""), float("nan"), "'x' must be within"),
        (Param("w", "floats", [], "", min=0.0), "1,-1", "'w' must be within 0.."),
    ],
)
def test_rejects_bad_values_naming_parameter_and_range(param, value, message):
    with pytest.raises(InputError, match=message):
        param.validate(value)


def test_validate_params_fills_defaults_and_rejects_unknown_and_misplaced():
    schema = [Param("a", "int", 3, ""), Param("alpha", "float", 1.0, "", methods=("adain",))]
    assert validate_params(schema, {}) == {"a": 3, "alpha": 1.0}
    with pytest.raises(InputError, match="unknown parameter.*zzz"):
        validate_params(schema, {"zzz": 1})
    with pytest.raises(InputError, match="'alpha' applies to method adain, not 'optimization'"):
        validate_params(schema, {"alpha": 0.5}, method="optimization")


def test_an_options_dataclass_declares_its_own_schema_entries():
    @dataclasses.dataclass(frozen=True, kw_only=True)
    class Options:
        steps: int = dataclasses.field(default=3, metadata={"help": "how many", "min": 1})
        mode: str = dataclasses.field(default="a", metadata={"help": "which", "choices": "ab"})
        rate: float = dataclasses.field(default=0.5, metadata={"help": "how fast", "max": 1.0})
        seed: int = 0  # no help: not a parameter

    steps, mode, rate = params_from_fields(Options, "steps", "mode", "rate")
    assert steps == Param("steps", "int", 3, "how many", min=1)
    assert mode == Param("mode", "choice", "a", "which", choices=("a", "b"))
    assert rate == Param("rate", "float", 0.5, "how fast", max=1.0)
    values = validate_params([steps, mode, rate], {"steps": "4", "mode": "b"})
    assert options_from_params(Options, values, seed=7) == Options(steps=4, mode="b", seed=7)


def test_engine_defaults_are_the_schema_defaults():
    from nst_plugin.default_plugins import adain_method, optimization_method
    from nst_plugin.engine.adain import AdaINOptions
    from nst_plugin.engine.optimization import OptimizationOptions

    for params, options in [
        (optimization_method.PARAMS, OptimizationOptions()),
        (adain_method.PARAMS, AdaINOptions()),
    ]:
        declared = [p for p in params if hasattr(options, p.name) and p.name != "scales"]
        assert declared and all(p.default == getattr(options, p.name) for p in declared)
