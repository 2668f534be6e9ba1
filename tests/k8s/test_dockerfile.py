"""The image's rules (the Dockerfile, read as text): each fails on a planted defect."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.k8s import dockerfile
from tests.k8s.checks import problems
from tests.k8s.manifests import rendered


def test_the_dockerfile_passes() -> None:
    text = dockerfile.read(dockerfile.DOCKERFILE)
    assert text is not None, "Dockerfile missing at the repository root"
    assert dockerfile.check_dockerfile(text, dockerfile.read(dockerfile.DOCKERIGNORE)) == []
    assert dockerfile.image_uid(text) == 10001


DOCKERFILE_DEFECTS = [
    (
        "one stage",
        lambda t: t.replace("FROM python:${PYTHON_VERSION}-slim-bookworm\n", "").replace(
            "COPY --from=build /opt/venv /opt/venv\n", ""
        ),
        "multi-stage",
    ),
    ("no USER", lambda t: t.replace("USER 10001:10001", ""), "needs a numeric USER"),
    ("named USER", lambda t: t.replace("USER 10001:10001", "USER app"), "needs a numeric USER"),
    ("root", lambda t: t.replace("USER 10001:10001", "USER 0"), "USER 0 is root"),
    (
        "shell-form CMD",
        lambda t: t.replace(
            'CMD ["taskiq", "worker", "asyncjobs.django.worker:broker", "--workers", "1"]',
            "CMD taskiq worker asyncjobs.django.worker:broker --workers 1",
        ),
        "is in shell form",
    ),
    (
        "buffered output",
        lambda t: t.replace("PYTHONUNBUFFERED=1", "PYTHONFAULTHANDLER=1"),
        "set ENV PYTHONUNBUFFERED=1",
    ),
]


@pytest.mark.parametrize(
    ("defect", "edit", "expected"), DOCKERFILE_DEFECTS, ids=[d for d, _, _ in DOCKERFILE_DEFECTS]
)
def test_a_planted_dockerfile_defect_is_reported(
    defect: str, edit: Callable[[str], str], expected: str, keda: Path
) -> None:
    text = dockerfile.read(dockerfile.DOCKERFILE)
    assert text is not None
    planted = edit(text)
    assert planted != text, f"{defect}: the edit changed nothing"
    assert not [p for p in dockerfile.check_dockerfile(text, ".git\n.venv\n") if expected in p]
    found = problems(rendered("redis"), overlay="redis", keda_dir=keda, dockerfile_text=planted)
    assert any(expected in p for p in found), f"{defect}: expected {expected!r} in {found}"


def test_dockerignore_keeps_the_venv_out(keda: Path) -> None:
    found = problems(rendered("redis"), overlay="redis", keda_dir=keda, dockerignore_text=".git\n")
    assert any(".dockerignore must exclude .venv" in p for p in found)
