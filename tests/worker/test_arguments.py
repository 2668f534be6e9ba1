from __future__ import annotations

import pytest
from pydantic import BaseModel
from taskiq import Context, TaskiqDepends

from asyncjobs.arguments import ArgumentValidator, InvalidArguments


class Point(BaseModel):
    x: int


async def typed(a: int, point: Point, *rest: int, flag: bool = False, **extra: str) -> None: ...


async def with_dependency(a: int, context: Context = TaskiqDepends()) -> None: ...


def test_coerces_json_values_to_annotations() -> None:
    args, kwargs = ArgumentValidator(typed).validate(
        ["1", {"x": "2"}, "3"], {"flag": "true", "z": "s"}
    )
    assert args == [1, Point(x=2), 3]
    assert kwargs == {"flag": True, "z": "s"}


@pytest.mark.parametrize(
    ("args", "kwargs", "match"),
    [
        (["x", {"x": 1}], {}, "'a'"),
        ([1, {"x": "nope"}], {}, "'point'"),
        ([1], {}, "missing a required argument: 'point'"),
        ([1, {"x": 1}], {"unknown": 1, "flag": "maybe"}, "'flag'"),
        ([1, {"x": 1}, "not-int"], {}, "'rest'"),
    ],
)
def test_rejects_arguments_that_do_not_fit(
    args: list[object], kwargs: dict[str, object], match: str
) -> None:
    with pytest.raises(InvalidArguments, match=match):
        ArgumentValidator(typed).validate(args, kwargs)


def test_dependencies_are_not_expected_in_the_message() -> None:
    assert ArgumentValidator(with_dependency).validate(["5"], {}) == ([5], {})


def test_too_many_arguments() -> None:
    with pytest.raises(InvalidArguments, match="too many"):
        ArgumentValidator(with_dependency).validate([1, 2, 3], {})


async def plain(a: int, point: Point, b: int = 0, c: object = None) -> None: ...


@pytest.mark.parametrize(
    "args",
    [["1", {"x": "2"}], ["1", {"x": "2"}, "3"], ["1", {"x": "2"}, "3", [4]]],
)
def test_the_positional_shortcut_gives_what_binding_gives(args: list[object]) -> None:
    validator = ArgumentValidator(plain)
    assert validator._plain  # the shortcut is what this test exercises
    expected = [1, Point(x=2), 3, [4]][: len(args)]
    assert validator.validate(args, {}) == (expected, {})
    # The same arguments by keyword take the binding path and agree.
    by_name = dict(zip(["a", "point", "b", "c"], args, strict=False))
    assert validator.validate([], by_name) == (expected, {})


@pytest.mark.parametrize(
    ("args", "match"),
    [(["1"], "missing a required argument: 'point'"), ([1, {"x": 1}, 2, 3, 4], "too many")],
)
def test_the_positional_shortcut_leaves_bad_counts_to_binding(
    args: list[object], match: str
) -> None:
    with pytest.raises(InvalidArguments, match=match):
        ArgumentValidator(plain).validate(args, {})


def test_the_positional_shortcut_still_rejects_a_bad_value() -> None:
    with pytest.raises(InvalidArguments, match="'b'"):
        ArgumentValidator(plain).validate([1, {"x": 1}, "not-int"], {})


async def scalars(s: str, i: int, f: float, b: bool, *, k: int = 0) -> None: ...


def test_values_of_exactly_the_hinted_type_pass_unchanged_and_others_are_coerced() -> None:
    validator = ArgumentValidator(scalars)
    text = "".join(["t", "ext"])  # not interned: identity shows it was not copied
    args, kwargs = validator.validate([text, 1, 2.5, True], {"k": 3})
    assert args == [text, 1, 2.5, True] and args[0] is text and kwargs == {"k": 3}
    # Not exactly the hinted type: pydantic still coerces (lax JSON rules) or refuses.
    assert validator.validate(["x", "2", 3, "true"], {"k": "4"}) == (["x", 2, 3.0, True], {"k": 4})
    with pytest.raises(InvalidArguments, match="'i'"):
        validator.validate(["x", "two", 1.0, True], {})
    with pytest.raises(InvalidArguments, match="'k'"):
        validator.validate(["x", 1, 1.0, True], {"k": "four"})


def test_the_positional_shortcut_passes_exact_types_and_coerces_the_rest() -> None:
    validator = ArgumentValidator(plain)
    assert validator._plain and "a" in validator._exact
    assert validator.validate([5, {"x": "1"}, "2"], {}) == ([5, Point(x=1), 2], {})
