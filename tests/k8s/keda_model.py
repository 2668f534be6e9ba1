"""What KEDA 2.20.2 computes from a trigger, written down in Python.

The ``redis-streams`` scaler (pkg/scalers/redis_streams_scaler.go) picks its mode in
``Validate()``: with ``consumerGroup`` set, ``lagCount`` non-zero selects the lag
(XINFO GROUPS), anything else the pending count (XPENDING, which fails with NOGROUP when
the group does not exist); without ``consumerGroup`` it reads XLEN (``streamLength``).
In lag mode a stream that does not exist reads 0, a group that does not exist reads XLEN,
and a NULL lag reads as go-redis decodes it: -1 (``NULL_LAG``; older go-redis: 0).

The ``rabbitmq`` scaler in ``QueueLength`` mode over ``http`` reads the management API's
``messages`` of the queue (ready + unacknowledged), or ``messages_ready`` with
``excludeUnacknowledged``; over AMQP a passive declare, i.e. the ready count.

With ``advanced.scalingModifiers`` every trigger's raw value goes into the formula (an
expr-lang expression over the triggers' names), and the ScaledObject is active when the
result is above ``activationTarget``; any trigger error makes it inactive and in error
(no scaling at all: from zero it never wakes).
"""

from __future__ import annotations

import ast
import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass

NULL_LAG = -1


class TriggerError(Exception):
    """The scaler answers an error (KEDA logs it; with a formula, nothing scales)."""


@dataclass(frozen=True)
class StreamState:
    """A Redis stream and its ``asyncjobs`` consumer group, as KEDA's queries see them."""

    length: int  # XLEN
    pending: int  # XPENDING count (XINFO GROUPS pending)
    lag: int | None  # XINFO GROUPS lag; None: Redis answered NULL
    group_exists: bool = True
    stream_exists: bool = True


@dataclass(frozen=True)
class QueueState:
    """A RabbitMQ queue as the management API reports it."""

    ready: int
    unacknowledged: int


def redis_streams_mode(metadata: Mapping[str, str]) -> str:
    """``lag``, ``pending`` or ``length``: the scaler's Validate()."""
    if metadata.get("consumerGroup"):
        return "lag" if int(metadata.get("lagCount") or 0) != 0 else "pending"
    return "length"


def redis_streams_metric(metadata: Mapping[str, str], state: StreamState) -> int:
    mode = redis_streams_mode(metadata)
    if mode == "length":
        return state.length if state.stream_exists else 0
    if mode == "pending":
        if not (state.stream_exists and state.group_exists):
            raise TriggerError("NOGROUP No such key or consumer group (XPENDING)")
        return state.pending
    if not state.stream_exists:
        return 0  # "ERR no such key"
    if not state.group_exists:
        return state.length  # the scaler falls back to XLEN
    return NULL_LAG if state.lag is None else state.lag


def rabbitmq_metric(metadata: Mapping[str, str], state: QueueState) -> int:
    if metadata.get("mode", "QueueLength") != "QueueLength":
        raise TriggerError(f"mode {metadata.get('mode')!r} is not a message count")
    if metadata.get("protocol", "auto") == "amqp":
        return state.ready
    if str(metadata.get("excludeUnacknowledged", "false")).lower() == "true":
        return state.ready
    return state.ready + state.unacknowledged


# -- the formula ----------------------------------------------------------------------
_ALLOWED = (ast.Expression, ast.BinOp, ast.UnaryOp, ast.Name, ast.Load, ast.Constant)
_OPERATORS = (ast.Add, ast.Sub, ast.Mult, ast.Div, ast.USub, ast.UAdd)


class FormulaError(ValueError):
    """The formula is not in the arithmetic subset this checker evaluates."""


def parse_formula(formula: str) -> ast.Expression:
    """Parse ``formula`` (+ - * / and parentheses over names and numbers: the same
    syntax in expr-lang and Python). Anything else is refused, not guessed at."""
    try:
        tree = ast.parse(formula, mode="eval")
    except SyntaxError as exc:
        raise FormulaError(f"cannot parse {formula!r}: {exc.msg}") from None
    for node in ast.walk(tree):
        if isinstance(node, ast.BinOp | ast.UnaryOp) and not isinstance(node.op, _OPERATORS):
            raise FormulaError(f"operator {type(node.op).__name__} in {formula!r}")
        if not isinstance(node, _ALLOWED + _OPERATORS):
            raise FormulaError(f"{type(node).__name__} in {formula!r}: only + - * / ( )")
        if isinstance(node, ast.Constant) and not isinstance(node.value, int | float):
            raise FormulaError(f"constant {node.value!r} in {formula!r}")
    return tree


def formula_names(formula: str) -> set[str]:
    return {node.id for node in ast.walk(parse_formula(formula)) if isinstance(node, ast.Name)}


_ARITHMETIC: dict[type[ast.operator], Callable[[float, float], float]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
}


def evaluate(formula: str, values: Mapping[str, float]) -> float:
    """The formula's value given each trigger's raw metric."""

    def value(node: ast.AST) -> float:
        if isinstance(node, ast.Expression):
            return value(node.body)
        if isinstance(node, ast.Constant):
            assert isinstance(node.value, int | float)  # parse_formula refused the rest
            return float(node.value)
        if isinstance(node, ast.Name):
            if node.id not in values:
                raise FormulaError(f"{node.id!r} is not a trigger name")
            return float(values[node.id])
        if isinstance(node, ast.UnaryOp):
            return -value(node.operand) if isinstance(node.op, ast.USub) else value(node.operand)
        assert isinstance(node, ast.BinOp)
        return _ARITHMETIC[type(node.op)](value(node.left), value(node.right))

    return value(parse_formula(formula))
