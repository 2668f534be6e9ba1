"""The guardrails of README "Architecture" can fail, and the transports stay behind the port.

``make check`` runs ``lint-imports`` ([tool.importlinter] in pyproject.toml). Here it runs
on a copy of the package with a forbidden import planted, to prove each contract breaks
when it should (a check that cannot fail would guard nothing).

The switch check: outside a transport's own folder (``asyncjobs/brokers/<transport>/``)
and the scheme table, no code chooses by transport name (``== "redis"``,
``transport_name == ...``, ``Transport.REDIS``, a dict keyed by scheme ...): that choice
belongs to the scheme table and the port. ``ALLOWED_SWITCHES`` lists exceptions (none
since the port); an entry that no longer offends fails ``test_allowlist_has_no_stale_entry``.
"""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "asyncjobs"

# -- lint-imports on a copy with a planted import -----------------------------------------
LAYERS = "Layers: asyncjobs.django -> kernel -> asyncjobs.schedules -> asyncjobs.brokers"
INDEPENDENT = "The transports are independent of each other"
PRIVATE = "Only a transport's own folder imports it"
DJANGO = "Only asyncjobs.django imports django"


def lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    """``lint-imports`` run in ``root`` (its cwd comes first on the path, so it analyses
    ``root/asyncjobs``, not the installed package)."""
    command = "import sys; from importlinter.cli import lint_imports_command as c; sys.exit(c())"
    return subprocess.run(
        [sys.executable, "-c", command, "--no-cache", "--no-logo"],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def package_copy(tmp_path: Path) -> Path:
    shutil.copytree(PACKAGE, tmp_path / "asyncjobs", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def plant(root: Path, module: str, line: str) -> None:
    path = root / module
    before = path.read_text() if path.exists() else ""
    path.write_text(before + f"\n{line}  # planted by tests/test_architecture.py\n")


def verdicts(output: str) -> dict[str, str]:
    """Contract name -> KEPT / BROKEN, from the summary lines of lint-imports."""
    found = {}
    for line in output.splitlines():
        for verdict in (" KEPT", " BROKEN"):
            if verdict in line:
                found[line.split(verdict)[0]] = verdict.strip()
    return found


def test_the_unplanted_copy_keeps_every_contract(tmp_path: Path) -> None:
    result = lint_imports(package_copy(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert verdicts(result.stdout)[LAYERS] == "KEPT"
    assert "BROKEN" not in result.stdout


@pytest.mark.parametrize(
    ("module", "line", "broken", "named"),
    [
        pytest.param(
            "asyncjobs/brokers/base.py",
            "import asyncjobs.config",
            {LAYERS},
            "asyncjobs.brokers.base -> asyncjobs.config",
            id="upward-import",
        ),
        pytest.param(
            "asyncjobs/brokers/redis/leases.py",
            "import asyncjobs.brokers.rabbitmq.acks",
            {INDEPENDENT, PRIVATE},
            "asyncjobs.brokers.redis.leases -> asyncjobs.brokers.rabbitmq.acks",
            id="cross-transport-import",
        ),
        pytest.param(
            "asyncjobs/codec.py",
            "import django.conf",
            {DJANGO},
            "asyncjobs.codec -> django",
            id="django-in-the-kernel",
        ),
        pytest.param(
            "asyncjobs/unplaced.py",
            "VALUE = 1",
            {LAYERS},
            "- asyncjobs.unplaced",
            id="module-in-no-layer",
        ),
    ],
)
def test_a_planted_import_breaks_its_contract(
    tmp_path: Path, module: str, line: str, broken: set[str], named: str
) -> None:
    root = package_copy(tmp_path)
    plant(root, module, line)
    result = lint_imports(root)
    assert result.returncode == 1, result.stdout + result.stderr
    found = verdicts(result.stdout)
    assert {name for name, verdict in found.items() if verdict == "BROKEN"} >= broken, found
    assert named in result.stdout


# -- no transport-name switches outside the transports and the scheme table ---------------
TRANSPORT_NAMES = frozenset({"redis", "rediss", "rabbitmq", "amqp", "amqps", "memory"})
TRANSPORT_FOLDERS = tuple(f"asyncjobs/brokers/{name}/" for name in ("redis", "rabbitmq", "memory"))
# The scheme table: its module-level tables may name every transport (code in its
# functions may not).
SCHEME_TABLES = frozenset({"asyncjobs/brokers/transport.py"})

# (file, function) -> what it switches on. Empty: the port left no transport switch.
ALLOWED_SWITCHES: dict[tuple[str, str], str] = {}


@dataclass(frozen=True, slots=True)
class Switch:
    path: str
    scope: str  # the enclosing function's qualified name, or "<module>"
    line: int
    what: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line} in {self.scope}: {self.what}"


def _names_a_transport(node: ast.expr | None) -> bool:
    if isinstance(node, ast.Constant):
        return isinstance(node.value, str) and node.value in TRANSPORT_NAMES
    if isinstance(node, ast.Tuple | ast.List | ast.Set):
        return any(_names_a_transport(item) for item in node.elts)
    return False


def _is_transport_name(node: ast.expr) -> bool:
    if isinstance(node, ast.Attribute):
        return node.attr == "transport_name"
    return isinstance(node, ast.Name) and node.id == "transport_name"


class _SwitchFinder(ast.NodeVisitor):
    def __init__(self, path: str) -> None:
        self.path = path
        self.scopes: list[str] = []
        self.found: list[Switch] = []

    def _enter(self, node: ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef) -> None:
        self.scopes.append(node.name)
        self.generic_visit(node)
        self.scopes.pop()

    visit_FunctionDef = visit_AsyncFunctionDef = visit_ClassDef = _enter

    def _found(self, node: ast.AST, what: str) -> None:
        scope = ".".join(self.scopes) or "<module>"
        self.found.append(Switch(self.path, scope, getattr(node, "lineno", 0), what))

    def visit_Compare(self, node: ast.Compare) -> None:
        operands = [node.left, *node.comparators]
        if any(_names_a_transport(operand) for operand in operands):
            self._found(node, "compares with a transport name")
        if any(_is_transport_name(operand) for operand in operands):
            self._found(node, "compares transport_name")
        self.generic_visit(node)

    def visit_Attribute(self, node: ast.Attribute) -> None:
        if isinstance(node.value, ast.Name) and node.value.id == "Transport":
            self._found(node, f"uses Transport.{node.attr}")
        self.generic_visit(node)

    def visit_Dict(self, node: ast.Dict) -> None:
        if any(_names_a_transport(key) for key in node.keys):
            self._found(node, "a dict keyed by transport name")
        self.generic_visit(node)

    def visit_Call(self, node: ast.Call) -> None:
        method = node.func.attr if isinstance(node.func, ast.Attribute) else ""
        if method in ("startswith", "endswith") and any(map(_names_a_transport, node.args)):
            self._found(node, f"{method}() with a transport name")
        self.generic_visit(node)

    def visit_MatchValue(self, node: ast.MatchValue) -> None:
        if _names_a_transport(node.value):
            self._found(node, "matches a transport name")
        self.generic_visit(node)


def switches_in(source: str, path: str) -> list[Switch]:
    """Every transport-name switch in ``source``; in a scheme table module, its
    module-level statements (the tables) are skipped."""
    tree = ast.parse(source)
    finder = _SwitchFinder(path)
    for statement in tree.body:
        is_code = isinstance(statement, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)
        if path in SCHEME_TABLES and not is_code:
            continue
        finder.visit(statement)
    return finder.found


def package_switches() -> Iterator[Switch]:
    for file in sorted(PACKAGE.rglob("*.py")):
        path = file.relative_to(ROOT).as_posix()
        if not path.startswith(TRANSPORT_FOLDERS):
            yield from switches_in(file.read_text(), path)


def test_no_transport_switch_outside_the_transports_and_the_scheme_table() -> None:
    offending = [s for s in package_switches() if (s.path, s.scope) not in ALLOWED_SWITCHES]
    assert not offending, "choose through the scheme table / the port:\n" + "\n".join(
        map(str, offending)
    )


def test_allowlist_has_no_stale_entry() -> None:
    offending = {(s.path, s.scope) for s in package_switches()}
    stale = sorted(set(ALLOWED_SWITCHES) - offending)
    assert not stale, f"no longer offending, delete from ALLOWED_SWITCHES: {stale}"


@pytest.mark.parametrize(
    "source",
    [
        'def f(broker):\n    return broker.transport_name == "redis"\n',
        'def f(scheme):\n    return "rabbitmq" == scheme\n',
        "def f(name):\n    return name != 'memory'\n",
        "def f(t):\n    return t == transport_name\n",
        'def f(scheme):\n    return scheme in ("amqp", "amqps")\n',
        "def f(config):\n    return config.transport is Transport.RABBITMQ\n",
        "def f():\n    return {Transport.REDIS: 1}\n",
        'def f(scheme):\n    return {"redis": 6379}[scheme]\n',
        'def f(url):\n    return url.startswith("rediss")\n',
        'def f(scheme):\n    match scheme:\n        case "amqp":\n            return 1\n',
    ],
)
def test_the_switch_check_sees_a_planted_switch(source: str) -> None:
    found = switches_in(source, "asyncjobs/planted.py")
    assert found
    assert {switch.scope for switch in found} == {"f"}
    assert switches_in(source, "asyncjobs/brokers/transport.py"), "a scheme table's functions"


def test_the_scheme_tables_themselves_are_not_switches() -> None:
    table = "SCHEMES = {'redis': Transport.REDIS, 'amqp': Transport.RABBITMQ}\n"
    assert switches_in(table, "asyncjobs/brokers/transport.py") == []
    assert len(switches_in(table, "asyncjobs/config.py")) == 3
    assert switches_in('def f(x):\n    return x == "postgres"\n', "asyncjobs/x.py") == []
