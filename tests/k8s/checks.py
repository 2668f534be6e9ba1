"""Every offline check of one rendered overlay, for ``make test`` (tests/k8s).

    problems(render("redis"), overlay="redis")  # [] when the manifests are fine

Schemas (``schemas``), our pod rules (``policy``), the objects around them
(``policy_objects``), our KEDA rules (``policy_keda``) and the image's (``dockerfile``).
Each problem names the object and what to change.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from tests.k8s import dockerfile
from tests.k8s.manifests import Doc, Manifests
from tests.k8s.policy import check_pods
from tests.k8s.policy_keda import check_keda_policy
from tests.k8s.policy_objects import check_objects
from tests.k8s.schemas import check_schemas


def problems(
    docs: list[Doc],
    *,
    overlay: str,
    keda_dir: Path,
    dockerfile_text: str | None = None,
    dockerignore_text: str | None = None,
) -> list[str]:
    """All problems of ``docs`` (an overlay's objects) and of the image they run."""
    text = dockerfile.read(dockerfile.DOCKERFILE) if dockerfile_text is None else dockerfile_text
    ignore = (
        dockerfile.read(dockerfile.DOCKERIGNORE) if dockerignore_text is None else dockerignore_text
    )
    manifests = Manifests(docs, overlay)
    found = check_schemas(manifests, keda_dir)
    if text is None:
        found.append("Dockerfile is missing at the repository root")
        uid = None
    else:
        found += dockerfile.check_dockerfile(text, ignore)
        uid = dockerfile.image_uid(text)
    found += _guarded("pod rules", lambda: check_pods(manifests, uid))
    found += _guarded("object rules", lambda: check_objects(manifests))
    found += _guarded("KEDA rules", lambda: check_keda_policy(manifests))
    return found


def _guarded(what: str, check: Callable[[], list[str]]) -> list[str]:
    """A check that trips over a malformed object reports it instead of crashing (the
    schema checks above say what is malformed)."""
    try:
        return check()
    except (KeyError, IndexError, TypeError, ValueError, AssertionError) as exc:
        return [f"{what} could not run on these objects: {type(exc).__name__}: {exc}"]
