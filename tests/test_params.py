import pytest

from nst_plugin.engine.errors import InputError
from nst_plugin.params import Param, validate_params


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
