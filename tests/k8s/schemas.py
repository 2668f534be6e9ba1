"""Schema checks: Kubernetes' own (strict), KEDA's CRDs and KEDA's scaler parameters.

- Core kinds are validated with ``kubernetes-validate`` in strict mode (unknown fields
  are errors) against the oldest and the newest Kubernetes these manifests target.
- ScaledObject and TriggerAuthentication are validated against the CRDs' OpenAPI schemas
  from ``../shared/keda/<version>``, made strict the same way: the API server would
  prune an unknown field silently, so a misspelt one is an error here.
- Trigger metadata keys are checked against the scaler's parameter list
  (``scalers-schema.json``): KEDA ignores unknown keys silently. So are the parameters a
  TriggerAuthentication hands to the triggers that reference it.
"""

from __future__ import annotations

import copy
import json
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate  # type: ignore[import-untyped]
import yaml

from tests.k8s.manifests import Manifests, ref

# 1.30: Kubernetes' preStop `sleep` action is on by default from here (beta); 1.37: the
# newest schemas kubernetes-validate ships.
KUBERNETES_VERSIONS = ("1.30", "1.37")
KEDA_KINDS = {
    "ScaledObject": "keda.sh_scaledobjects.yaml",
    "TriggerAuthentication": "keda.sh_triggerauthentications.yaml",
}


def check_core(manifests: Manifests) -> list[str]:
    problems: list[str] = []
    for doc in manifests.docs:
        if not doc.get("apiVersion", "").startswith("keda.sh/"):
            problems += _core_problems(json.dumps(doc, sort_keys=True))
    return problems


@cache
def _core_problems(doc_json: str) -> tuple[str, ...]:
    """Memoized by content: the planted-defect tests validate mostly unchanged objects."""
    doc = json.loads(doc_json)
    for version in KUBERNETES_VERSIONS:
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.SchemaNotFoundError:
            return (
                f"{ref(doc)}: no Kubernetes {version} schema for {doc.get('apiVersion')} "
                f"{doc.get('kind')}",
            )
        except kubernetes_validate.ValidationError as exc:
            where = ".".join(str(part) for part in exc.absolute_path) or "(top)"
            return (f"{ref(doc)}: Kubernetes {version} schema: {where}: {exc.message}",)
    return ()


def strict(schema: Any) -> Any:
    """A copy where every object with ``properties`` refuses other properties."""
    schema = copy.deepcopy(schema)

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if (
                "properties" in node
                and "additionalProperties" not in node
                and not node.get("x-kubernetes-preserve-unknown-fields")
            ):
                node["additionalProperties"] = False
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(schema)
    return schema


@cache
def crd_schema(keda_dir: Path, kind: str) -> dict[str, Any]:
    crd = yaml.safe_load((keda_dir / KEDA_KINDS[kind]).read_text())
    [version] = [v for v in crd["spec"]["versions"] if v.get("served") and v.get("storage")]
    schema: dict[str, Any] = strict(version["schema"]["openAPIV3Schema"])
    schema["properties"]["metadata"] = {
        "type": "object",
        "properties": {key: {} for key in ("name", "namespace", "labels", "annotations")},
        "required": ["name"],
        "additionalProperties": False,
    }
    return schema


def check_keda(manifests: Manifests, keda_dir: Path) -> list[str]:
    problems: list[str] = []
    for doc in manifests.docs:
        if doc.get("apiVersion", "").startswith("keda.sh/"):
            problems += _keda_problems(json.dumps(doc, sort_keys=True), keda_dir)
    return problems


@cache
def _keda_problems(doc_json: str, keda_dir: Path) -> tuple[str, ...]:
    doc = json.loads(doc_json)
    if doc.get("kind") not in KEDA_KINDS or doc.get("apiVersion") != "keda.sh/v1alpha1":
        return (
            f"{ref(doc)}: unexpected KEDA kind {doc.get('apiVersion')} {doc.get('kind')} "
            "(ScaledObject, TriggerAuthentication)",
        )
    validator = jsonschema.Draft7Validator(crd_schema(keda_dir, doc["kind"]))
    return tuple(
        f"{ref(doc)}: KEDA {keda_dir.name} CRD schema: "
        f"{'.'.join(str(part) for part in error.absolute_path) or '(top)'}: {error.message}"
        for error in sorted(
            validator.iter_errors(doc), key=lambda e: list(map(str, e.absolute_path))
        )
    )


@cache
def scaler_parameters(keda_dir: Path) -> dict[str, dict[str, dict[str, Any]]]:
    """scaler type -> parameter name -> its description in scalers-schema.json."""
    data = json.loads((keda_dir / "scalers-schema.json").read_text())
    return {
        scaler["type"]: {param["name"]: param for param in scaler["parameters"]}
        for scaler in data["scalers"]
    }


def check_trigger_parameters(manifests: Manifests, keda_dir: Path) -> list[str]:
    known = scaler_parameters(keda_dir)
    problems: list[str] = []
    for so in manifests.of_kind("ScaledObject"):
        for trigger in so.get("spec", {}).get("triggers", []):
            kind = trigger.get("type")
            where = f"{ref(so)}: trigger {trigger.get('name') or kind}"
            if kind not in known:
                problems.append(f"{where}: unknown scaler type {kind!r}")
                continue
            params = known[kind]
            for key in trigger.get("metadata", {}):
                problems += _metadata_key_problems(where, kind, key, params)
            auth = trigger.get("authenticationRef", {}).get("name")
            ta = manifests.find("TriggerAuthentication", auth) if auth else None
            for item in (ta or {}).get("spec", {}).get("secretTargetRef", []):
                param = params.get(item.get("parameter"), {})
                if not param.get("triggerAuthenticationVariableReadable"):
                    problems.append(
                        f"{where}: TriggerAuthentication/{auth} sets {item.get('parameter')!r}, "
                        f"which a {kind} scaler does not read from a TriggerAuthentication"
                    )
    return problems


def _metadata_key_problems(
    where: str, kind: str, key: str, params: dict[str, dict[str, Any]]
) -> list[str]:
    if key in params:
        if params[key].get("metadataVariableReadable"):
            return []
        return [
            f"{where}: {key!r} cannot be set in a {kind} trigger's metadata "
            "(TriggerAuthentication only)"
        ]
    base = key.removesuffix("FromEnv")
    if key.endswith("FromEnv") and params.get(base, {}).get("envVariableReadable"):
        return []
    return [
        f"{where}: unknown metadata key {key!r} for {kind} (KEDA would ignore it "
        f"silently); known: {', '.join(sorted(params))}"
    ]


def check_schemas(manifests: Manifests, keda_dir: Path) -> list[str]:
    return (
        check_core(manifests)
        + check_keda(manifests, keda_dir)
        + check_trigger_parameters(manifests, keda_dir)
    )
