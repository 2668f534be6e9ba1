"""The wheel ships exactly the four packages, each typed, plus metadata."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = {"asyncjobs", "brokers", "schedules", "django_integration"}


def test_wheel_contains_exactly_the_four_typed_packages(tmp_path: Path) -> None:
    subprocess.run(
        [
            sys.executable,
            "-m",
            "build",
            "--wheel",
            "--no-isolation",
            "--outdir",
            str(tmp_path),
            str(ROOT),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    [wheel] = tmp_path.glob("asyncjobs-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    top_level = {name.split("/", 1)[0] for name in names}
    metadata = {name for name in top_level if name.endswith(".dist-info")}
    assert top_level - metadata == PACKAGES
    assert len(metadata) == 1
    for package in PACKAGES:
        assert f"{package}/py.typed" in names
    assert not any(name.startswith(("tests/", "example/")) for name in names)
