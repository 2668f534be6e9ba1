"""A task's arguments against its signature: bound when sent, validated once per message
when run.

taskiq only *tries* to coerce arguments and passes the raw value on when that fails; a
message whose arguments cannot bind or do not validate is dead-lettered instead.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any, get_type_hints

from pydantic import TypeAdapter, ValidationError
from taskiq_dependencies.dependency import Dependency

EXACT_TYPES = (str, int, float, bool)
PLAIN_KINDS = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)


class InvalidArguments(ValueError):
    """The message's arguments do not fit the task."""


class ArgumentValidator:
    """Built once per task: the signature and a pydantic adapter per annotated parameter."""

    def __init__(self, func: Callable[..., Any]) -> None:
        self._signature = inspect.signature(func)
        try:
            hints = get_type_hints(func)
        except Exception:  # unresolvable forward references: bind-only checks
            hints = {}
        self._adapters: dict[str, tuple[inspect._ParameterKind, TypeAdapter[Any]]] = {}
        # Parameters whose value needs no validation when it already has exactly the
        # hinted JSON type (what pydantic would return unchanged; its call costs ~10 us).
        self._exact: dict[str, type] = {}
        for name, param in self._signature.parameters.items():
            hint = hints.get(name)
            if hint is None or hint is Any or isinstance(param.default, Dependency):
                continue
            self._adapters[name] = (param.kind, TypeAdapter(hint))
            if hint in EXACT_TYPES and param.kind in PLAIN_KINDS:
                self._exact[name] = hint
        # The usual call, positional arguments only on plain parameters, needs no
        # inspect.bind (a third of the validation's cost): position i is parameter i.
        params = list(self._signature.parameters.values())
        self._plain = all(p.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD for p in params)
        self._names = [p.name for p in params]
        self._required = sum(p.default is inspect.Parameter.empty for p in params)

    def check_binding(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        """Whether the arguments bind to the signature (a sender's check: their values
        are validated by the worker, after the JSON round trip)."""
        if self._plain and not kwargs and self._required <= len(args) <= len(self._names):
            return
        try:
            bound = self._signature.bind_partial(*args, **kwargs)
        except TypeError as exc:
            raise InvalidArguments(str(exc)) from None
        self._check_required(bound)

    def validate(self, args: list[Any], kwargs: dict[str, Any]) -> tuple[list[Any], dict[str, Any]]:
        if self._plain and not kwargs and self._required <= len(args) <= len(self._names):
            return self._validate_positional(args), {}
        try:
            bound = self._signature.bind_partial(*args, **kwargs)
        except TypeError as exc:
            raise InvalidArguments(str(exc)) from None
        self._check_required(bound)
        if self._adapters:
            for name, value in bound.arguments.items():
                if type(value) is self._exact.get(name):
                    continue
                entry = self._adapters.get(name)
                if entry is not None:
                    bound.arguments[name] = self._coerce(name, entry, value)
        return list(bound.args), dict(bound.kwargs)

    def _validate_positional(self, args: list[Any]) -> list[Any]:
        if not self._adapters:
            return list(args)
        coerced = list(args)
        for i, name in enumerate(self._names[: len(args)]):
            if type(args[i]) is self._exact.get(name):
                continue
            entry = self._adapters.get(name)
            if entry is not None:
                coerced[i] = self._coerce(name, entry, args[i])
        return coerced

    def _check_required(self, bound: inspect.BoundArguments) -> None:
        for name, param in self._signature.parameters.items():
            required = param.default is inspect.Parameter.empty and param.kind not in (
                inspect.Parameter.VAR_POSITIONAL,
                inspect.Parameter.VAR_KEYWORD,
            )
            if required and name not in bound.arguments:
                raise InvalidArguments(f"missing a required argument: {name!r}")

    @staticmethod
    def _coerce(
        name: str, entry: tuple[inspect._ParameterKind, TypeAdapter[Any]], value: Any
    ) -> Any:
        kind, adapter = entry
        try:
            if kind is inspect.Parameter.VAR_POSITIONAL:
                return tuple(adapter.validate_python(item) for item in value)
            if kind is inspect.Parameter.VAR_KEYWORD:
                return {key: adapter.validate_python(item) for key, item in value.items()}
            return adapter.validate_python(value)
        except ValidationError as exc:
            first = exc.errors(include_url=False, include_input=False)[0]
            raise InvalidArguments(f"argument {name!r}: {first['msg']}") from None
