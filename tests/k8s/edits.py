"""Finding objects in an overlay's rendered documents, and edits that plant defects in
them (in memory) for the planted-defect tests."""

from __future__ import annotations

from collections.abc import Callable

from tests.k8s.manifests import Doc

Edit = Callable[[list[Doc]], None]


def one(docs: list[Doc], kind: str, name: str | None = None) -> Doc:
    found = [d for d in docs if d["kind"] == kind and name in (None, d["metadata"]["name"])]
    assert len(found) == 1, f"{kind}/{name}: {len(found)} found"
    return found[0]


def deployment(docs: list[Doc], role: str) -> Doc:
    return one(docs, "Deployment", f"asyncjobs-{role}")


def pod(docs: list[Doc], role: str) -> Doc:
    spec: Doc = deployment(docs, role)["spec"]["template"]["spec"]
    return spec


def container(docs: list[Doc], role: str) -> Doc:
    first: Doc = pod(docs, role)["containers"][0]
    return first


def config(docs: list[Doc]) -> dict[str, str]:
    data: dict[str, str] = one(docs, "ConfigMap")["data"]
    return data


def scaled(docs: list[Doc]) -> Doc:
    spec: Doc = one(docs, "ScaledObject")["spec"]
    return spec


def modifiers(docs: list[Doc]) -> Doc:
    found: Doc = scaled(docs)["advanced"]["scalingModifiers"]
    return found


def trigger(docs: list[Doc], index: int = 0) -> Doc:
    found: Doc = scaled(docs)["triggers"][index]
    return found


def secret(docs: list[Doc], name: str) -> dict[str, str]:
    data: dict[str, str] = one(docs, "Secret", name)["stringData"]
    return data


def set_key(target: Doc, key: str, value: object) -> None:
    target[key] = value


def drop(target: Doc, key: str) -> None:
    del target[key]


def duplicate_scaled_object(docs: list[Doc]) -> None:
    copy = {**one(docs, "ScaledObject"), "metadata": {"name": "asyncjobs-worker-2"}}
    docs.append(copy)


def two_images(docs: list[Doc]) -> None:
    container(docs, "web")["image"] = "registry.example.com/other:1.0"


def drop_emails_trigger(docs: list[Doc]) -> None:
    scaled(docs)["triggers"].pop(1)
    modifiers(docs)["formula"] = "default_backlog"


def lag_plus_pending(docs: list[Doc]) -> None:
    """The issue's first idea: lagCount and pendingEntriesCount on the consumer group."""
    trigger(docs)["metadata"].update(consumerGroup="asyncjobs", lagCount="100")
    trigger(docs, 1)["metadata"].update(consumerGroup="asyncjobs", pendingEntriesCount="100")
