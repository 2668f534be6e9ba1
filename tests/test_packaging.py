"""The wheel installs one top-level name, ``asyncjobs`` (typed, every subpackage in it),
so that a project's own apps may be called ``brokers``, ``schedules`` or anything else."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SUBPACKAGES = (
    "brokers",
    "brokers/redis",
    "brokers/rabbitmq",
    "brokers/memory",
    "schedules",
    "django",
    "django/management/commands",
    "django/task_backend",
    "worker",
    "tracing",
)


def build_wheel(out: Path) -> Path:
    """The wheel of a copy of the checkout (a ``build/`` left in the checkout by an
    earlier build would add its stale modules to the wheel)."""
    source = out / "source"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(*LEFT_OUT))
    subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(out), "."],
        cwd=source,
        check=True,
        capture_output=True,
        timeout=300,
    )
    [wheel] = out.glob("django_asyncjobs-*.whl")
    return wheel


LEFT_OUT = (".venv", ".git", "build", "dist", "*.egg-info", ".*_cache", "__pycache__", ".demo")


def test_the_wheel_installs_only_the_asyncjobs_package(tmp_path: Path) -> None:
    wheel = build_wheel(tmp_path)
    names = zipfile.ZipFile(wheel).namelist()
    top_level = {name.split("/", 1)[0] for name in names}
    metadata = {name for name in top_level if name.endswith(".dist-info")}
    assert top_level - metadata == {"asyncjobs"}
    assert len(metadata) == 1
    assert "asyncjobs/py.typed" in names
    for package in SUBPACKAGES:
        assert f"asyncjobs/{package}/__init__.py" in names, package
    assert not any(name.startswith(("tests/", "example/")) for name in names)
