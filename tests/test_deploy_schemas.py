"""The deployment files against their published schemas, offline: docker-compose.yml against
the Compose specification's JSON schema, the Kubernetes manifests against Kubernetes'
OpenAPI-derived JSON schemas (the `kubernetes-validate` package, strict: an unknown field is
an error, as it is for `kubectl apply`), the KEDA objects against KEDA's CRD schemas.

The Compose and KEDA schemas are vendored in tests/schemas/ (README there: sources,
versions, licences). A violation fails with the JSON path of the offending field.
test_deploy.py checks what no schema can: that the files agree with the code and each other.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Iterator
from functools import cache
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from jsonschema import Draft7Validator, ValidationError
from jsonschema.protocols import Validator

from tests.test_deploy import ROOT, resolve

K8S = ROOT / "deploy" / "k8s"
SCHEMAS = Path(__file__).resolve().parent / "schemas"
#: The Kubernetes minor the manifests are checked against: an old one still in use, so that
#: a field only a newer version knows fails here too (strict). kubernetes-validate ships one
#: schema set per minor.
KUBERNETES_VERSION = "1.30"
#: KEDA's CustomResourceDefinitions, vendored from the KEDA release in tests/schemas/README.md.
KEDA_CRDS = ("keda.sh_scaledobjects.yaml", "keda.sh_triggerauthentications.yaml")
#: Kinds no published schema covers: kustomize's own file (not sent to the cluster).
UNCHECKED = {("kustomize.config.k8s.io/v1beta1", "Kustomization")}


# --- schemas ------------------------------------------------------------------------------


@cache
def compose_validator() -> Validator:
    schema = json.loads((SCHEMAS / "compose-spec.json").read_text())
    Draft7Validator.check_schema(schema)
    return Draft7Validator(schema)


def strict(schema: dict[str, Any]) -> dict[str, Any]:
    """`schema` with unknown fields refused wherever it lists the fields of an object.

    A CRD's structural schema makes the API server prune unknown fields, and kubectl's
    default server-side field validation (strict) turns that into an error; a plain JSON
    Schema validator would let a misspelt field through. Objects that keep unknown fields
    (`x-kubernetes-preserve-unknown-fields`) or declare `additionalProperties` are left
    alone."""
    out = copy.deepcopy(schema)

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

    walk(out)
    return out


@cache
def keda_validators() -> dict[tuple[str, str], Validator]:
    """(apiVersion, kind) -> a validator of each version each vendored KEDA CRD serves."""
    validators: dict[tuple[str, str], Validator] = {}
    for name in KEDA_CRDS:
        crd = yaml.safe_load((SCHEMAS / name).read_text())
        group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
        for version in crd["spec"]["versions"]:
            schema = strict(version["schema"]["openAPIV3Schema"])
            # OpenAPI v3's schema objects are a subset of draft 7's keywords, plus `x-`
            # extensions a JSON Schema validator ignores.
            Draft7Validator.check_schema(schema)
            validators[f"{group}/{version['name']}", kind] = Draft7Validator(schema)
    return validators


def where(error: ValidationError) -> str:
    """The offending field as a JSON path (`$.spec.triggers[0].metadata`) and the reason."""
    return f"{error.json_path}: {error.message}"


def schema_errors(validator: Validator, document: Any) -> list[str]:
    errors = sorted(validator.iter_errors(document), key=lambda e: list(map(str, e.path)))
    return [where(e) for e in errors]


def kubernetes_errors(document: dict[str, Any]) -> list[str]:
    """Violations of Kubernetes' schema for the document's kind (kubernetes-validate stops at
    the first one)."""
    try:
        kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=True)
    except kubernetes_validate.ValidationError as exc:
        return [where(exc)]
    return []


def manifest_errors(document: dict[str, Any]) -> list[str]:
    """Violations of whichever published schema covers the manifest's kind."""
    key = (document["apiVersion"], document["kind"])
    validator = keda_validators().get(key)
    if validator is not None:
        return schema_errors(validator, document)
    return kubernetes_errors(document)


# --- the files ----------------------------------------------------------------------------


def interpolate(node: Any) -> Any:
    """The compose file as Compose validates it: every `${VAR:-default}` in a string replaced
    (by its default, or a placeholder for a variable .env must set)."""
    if isinstance(node, str):
        return resolve(node)
    if isinstance(node, dict):
        return {k: interpolate(v) for k, v in node.items()}
    if isinstance(node, list):
        return [interpolate(v) for v in node]
    return node


def compose_document() -> Any:
    return interpolate(yaml.safe_load((ROOT / "docker-compose.yml").read_text()))


def manifests() -> Iterator[tuple[str, dict[str, Any]]]:
    for path in sorted(K8S.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc is not None:
                yield f"{path.name} {doc.get('kind')} {doc.get('metadata', {}).get('name')}", doc


MANIFESTS = dict(manifests())


# --- the checks ---------------------------------------------------------------------------


def test_compose_file_follows_the_compose_specification() -> None:
    assert schema_errors(compose_validator(), compose_document()) == []


@pytest.mark.parametrize(
    "name", [n for n, d in MANIFESTS.items() if (d["apiVersion"], d["kind"]) not in UNCHECKED]
)
def test_manifest_follows_its_published_schema(name: str) -> None:
    assert manifest_errors(MANIFESTS[name]) == [], name


def test_every_manifest_kind_has_a_schema() -> None:
    """A new kind in deploy/k8s is checked by some schema, or listed in UNCHECKED on purpose."""
    for name, document in MANIFESTS.items():
        key = (document["apiVersion"], document["kind"])
        if key in UNCHECKED or key in keda_validators():
            continue
        try:
            kubernetes_errors(document)
        except kubernetes_validate.SchemaNotFoundError:
            pytest.fail(f"{name}: no schema for {key}")


def test_keda_objects_are_checked_against_the_crds() -> None:
    kinds = {(d["apiVersion"], d["kind"]) for d in MANIFESTS.values()}
    assert {
        ("keda.sh/v1alpha1", "ScaledObject"),
        ("keda.sh/v1alpha1", "TriggerAuthentication"),
    } <= kinds & set(keda_validators())


# --- a broken field is named --------------------------------------------------------------


def _set(document: Any, path: list[str | int], value: Any) -> Any:
    broken = copy.deepcopy(document)
    node = broken
    for step in path[:-1]:
        node = node[step]
    node[path[-1]] = value
    return broken


def _manifest(kind: str, name: str) -> dict[str, Any]:
    return next(
        d for d in MANIFESTS.values() if d["kind"] == kind and d["metadata"]["name"] == name
    )


def _worker() -> dict[str, Any]:
    return _manifest("Deployment", "prelabel-worker")


def _scaled() -> dict[str, Any]:
    return _manifest("ScaledObject", "prelabel-worker")


#: (what, document, field, bad value, checker, the JSON path the error must start with, and
#: what else it must name: a misspelt key is named in the message of its parent's error).
Breakage = tuple[str, Callable[[], Any], list[str | int], Any, Callable[[Any], list[str]], str, str]
BREAKAGES: list[Breakage] = [
    (
        "compose: a healthcheck's retries as a list",
        compose_document,
        ["services", "redis", "healthcheck", "retries"],
        [20],
        lambda d: schema_errors(compose_validator(), d),
        "$.services.redis.healthcheck.retries",
        "",
    ),
    (
        "compose: a misspelt service key",
        compose_document,
        ["services", "worker", "stop_grace_periods"],
        "3600s",
        lambda d: schema_errors(compose_validator(), d),
        "$.services.worker",
        "'stop_grace_periods'",
    ),
    (
        "k8s: the grace period as a string",
        _worker,
        ["spec", "template", "spec", "terminationGracePeriodSeconds"],
        "an hour",
        manifest_errors,
        "$.spec.template.spec.terminationGracePeriodSeconds",
        "",
    ),
    (
        "k8s: a misspelt container field",
        _worker,
        ["spec", "template", "spec", "containers", 0, "livenesProbe"],
        {},
        manifest_errors,
        "$.spec.template.spec.containers[0]",
        "'livenesProbe'",
    ),
    (
        "KEDA: a trigger's metadata value not a string",
        _scaled,
        ["spec", "triggers", 0, "metadata", "listLength"],
        4,
        manifest_errors,
        "$.spec.triggers[0].metadata.listLength",
        "",
    ),
    (
        "KEDA: a misspelt ScaledObject field",
        _scaled,
        ["spec", "maxReplicaCont"],
        11,
        manifest_errors,
        "$.spec",
        "'maxReplicaCont'",
    ),
]


@pytest.mark.parametrize(
    ("document", "path", "value", "check", "json_path", "mention"),
    [b[1:] for b in BREAKAGES],
    ids=[b[0] for b in BREAKAGES],
)
def test_a_broken_field_fails_naming_its_path(
    document: Callable[[], Any],
    path: list[str | int],
    value: Any,
    check: Callable[[Any], list[str]],
    json_path: str,
    mention: str,
) -> None:
    original = document()
    assert check(original) == []
    errors = check(_set(original, path, value))
    assert any(e.startswith(f"{json_path}: ") and mention in e for e in errors), errors
