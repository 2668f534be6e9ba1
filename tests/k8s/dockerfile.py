"""Rules for the image (the repository's Dockerfile), read as text: no Docker needed.

Multi-stage; the final stage runs as a fixed numeric non-root UID (the pods'
runAsUser), with PYTHONUNBUFFERED set, and its CMD/ENTRYPOINT in exec form (a JSON
array: the process is PID 1 and receives SIGTERM). The .dockerignore keeps the
repository's virtual environments and git data out of the build context.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from tests.k8s.manifests import REPO

DOCKERFILE = REPO / "Dockerfile"
DOCKERIGNORE = REPO / ".dockerignore"
MUST_IGNORE = (".git", ".venv")


@dataclass
class Stage:
    base: str
    instructions: list[tuple[str, str]] = field(default_factory=list)  # (INSTRUCTION, rest)


def parse(text: str) -> list[Stage]:
    """Stages of a Dockerfile: continuation lines joined, comments dropped."""
    stages: list[Stage] = []
    logical = re.sub(
        r"\\\n",
        " ",
        "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#")),
    )
    for line in logical.splitlines():
        if not line.strip():
            continue
        instruction, _, rest = line.strip().partition(" ")
        instruction = instruction.upper()
        if instruction == "FROM":
            stages.append(Stage(base=rest.strip()))
        elif stages:
            stages[-1].instructions.append((instruction, rest.strip()))
    return stages


def image_uid(text: str) -> int | None:
    """The numeric UID the final stage runs as (None: no numeric USER)."""
    stages = parse(text)
    users = [rest for name, rest in stages[-1].instructions if name == "USER"] if stages else []
    if not users:
        return None
    uid = users[-1].split(":", 1)[0]
    return int(uid) if uid.isdigit() else None


def env_of(stage: Stage) -> dict[str, str]:
    env: dict[str, str] = {}
    for name, rest in stage.instructions:
        if name == "ENV":
            for key, value in re.findall(r"([A-Za-z_][A-Za-z0-9_]*)=(\"[^\"]*\"|\S+)", rest):
                env[key] = value.strip('"')
    return env


def check_dockerfile(text: str, ignore_text: str | None) -> list[str]:
    stages = parse(text)
    if not stages:
        return ["Dockerfile: no FROM"]
    problems: list[str] = []
    if len(stages) < 2:
        problems.append(
            "Dockerfile: build in one stage and copy the result into a runtime "
            "stage (multi-stage: no compilers or caches in the image)"
        )
    final = stages[-1]
    uid = image_uid(text)
    if uid is None:
        problems.append(
            "Dockerfile: the final stage needs a numeric USER (uid:gid), so "
            "Kubernetes' runAsNonRoot can verify it"
        )
    elif uid == 0:
        problems.append("Dockerfile: USER 0 is root")
    if env_of(final).get("PYTHONUNBUFFERED") not in ("1", "true", "True"):
        problems.append(
            "Dockerfile: set ENV PYTHONUNBUFFERED=1 in the final stage (logs "
            "reach kubectl logs at once)"
        )
    for name, rest in final.instructions:
        if name in ("CMD", "ENTRYPOINT") and not _exec_form(rest):
            problems.append(
                f"Dockerfile: {name} {rest} is in shell form; write a JSON array "
                "(exec form) so the process is PID 1 and gets SIGTERM"
            )
    if ignore_text is None:
        problems.append(".dockerignore is missing")
    else:
        entries = {line.strip().rstrip("/") for line in ignore_text.splitlines()}
        missing = [entry for entry in MUST_IGNORE if entry not in entries]
        if missing:
            problems.append(f".dockerignore must exclude {', '.join(missing)}")
    return problems


def _exec_form(rest: str) -> bool:
    try:
        value = json.loads(rest)
    except ValueError:
        return False
    return isinstance(value, list) and bool(value) and all(isinstance(v, str) for v in value)


def read(path: Path) -> str | None:
    return path.read_text() if path.is_file() else None
