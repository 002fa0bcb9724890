"""The deployment files agree with the code: docker-compose.yml, the Dockerfile, .env.example
and deploy/k8s. No Docker engine or cluster here: the files are parsed and cross-checked
(commands and flags exist in the CLI, environment variables are ones prelabel reads, time
limits and queue names match prelabel/queue.py and the settings). The files' shapes (field
names and types) are checked against their published schemas in test_deploy_schemas.py."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer
import yaml

from prelabel import exporter, flower, health, logs
from prelabel.cli import app
from prelabel.queue import SOFT_TIME_LIMIT, TIME_LIMIT, VISIBILITY_TIMEOUT
from prelabel.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
K8S = ROOT / "deploy" / "k8s"
_VAR = re.compile(r"\$\{(?P<name>[A-Z_][A-Z0-9_]*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}")


# --- what the code accepts ----------------------------------------------------------------


def cli() -> Any:
    """The CLI as a click group (typer vendors its own click: no isinstance check)."""
    return typer.main.get_command(app)


def env_prelabel_reads() -> set[str]:
    """Every environment variable some part of prelabel reads."""
    names: set[str] = set()
    prefix = Settings.model_config.get("env_prefix", "")
    for field_name, field in Settings.model_fields.items():
        alias = field.validation_alias
        choices = getattr(alias, "choices", None)
        if choices:
            names.update(str(c) for c in choices)
        else:
            names.add(f"{prefix}{field_name}".upper())
    names.update(logs.SECRET_ENV, logs.URL_ENV)
    names.update({"PRELABEL_LOG_FORMAT", health.ENV, flower.AUTH_ENV})
    return names


def resolve(value: str) -> str:
    """A compose string with every `${VAR:-default}` replaced by its default."""
    return _VAR.sub(lambda m: m["arg"] if m["op"] in (":-", "-") else f"<{m['name']}>", value)


def parse_duration(text: str) -> float:
    """Compose durations: `3600s`, `1h`, `1m30s`."""
    units = {"h": 3600, "m": 60, "s": 1, "ms": 0.001}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|h|m|s)", text)
    assert parts and "".join(a + b for a, b in parts) == text, f"not a duration: {text}"
    return sum(float(n) * units[u] for n, u in parts)


def check_command(args: list[str]) -> None:
    """`prelabel ARGS` names a command that exists, with options that command has."""
    assert args, "empty command"
    name = args[0]
    assert name in cli().commands, f"`prelabel {name}` is not a command"
    command = cli().commands[name]
    known = {opt for p in command.params for opt in (*p.opts, *getattr(p, "secondary_opts", ()))}
    for arg in args[1:]:
        if arg.startswith("--"):
            flag = arg.split("=", 1)[0]
            assert flag in known, f"`prelabel {name}` has no option {flag}"
    # And click accepts the whole line (types, required options), without running it.
    ctx = command.make_context(f"prelabel {name}", [resolve(a) for a in args[1:]])
    ctx.close()


# --- docker compose -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    assert isinstance(data, dict)
    return data


def prelabel_services(compose: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    image = compose["x-prelabel"]["image"]
    for name, service in compose["services"].items():
        if service.get("image") == image:
            yield name, service


def test_compose_has_the_services_and_profiles(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert {"redis", "worker", "flower", "metrics", "simulator", "producer"} <= set(services)
    assert services["simulator"]["profiles"] == ["demo"]
    assert services["producer"]["profiles"] == ["run"]
    assert services["producer"]["restart"] == "no"
    for always in ("redis", "worker", "flower", "metrics"):
        assert "profiles" not in services[always], always
    assert {n for n, _ in prelabel_services(compose)} == set(services) - {"redis"}


def test_redis_persists_and_never_evicts(compose: dict[str, Any]) -> None:
    redis = compose["services"]["redis"]
    command = [str(c) for c in redis["command"]]
    pairs = dict(zip(command[1::2], command[2::2], strict=False))
    assert command[0] == "redis-server"
    assert pairs["--appendonly"] == "yes"
    assert pairs["--maxmemory-policy"] == "noeviction"
    assert any(v.split(":")[1] == "/data" for v in redis["volumes"])
    volume = redis["volumes"][0].split(":")[0]
    assert volume in compose["volumes"]
    assert "healthcheck" in redis


def test_every_compose_command_exists_in_the_cli(compose: dict[str, Any]) -> None:
    for name, service in prelabel_services(compose):
        command = service["command"]
        assert isinstance(command, list), f"{name}: give the command as a list"
        check_command([str(c) for c in command])


def test_compose_environment_is_what_prelabel_reads(compose: dict[str, Any]) -> None:
    allowed = env_prelabel_reads()
    for name, service in prelabel_services(compose):
        unknown = set(service.get("environment") or {}) - allowed
        assert not unknown, f"{name} sets variables prelabel never reads: {unknown}"
        if name != "simulator":
            assert "REDIS_URL" in service["environment"], name


def test_workers_scale_and_shut_down_warm(compose: dict[str, Any]) -> None:
    worker = compose["services"]["worker"]
    assert worker["command"][0] == "worker"
    # `--scale worker=N` needs no fixed name and no fixed host port.
    assert "container_name" not in worker and "ports" not in worker
    grace = parse_duration(worker["stop_grace_period"])
    assert TIME_LIMIT < grace < VISIBILITY_TIMEOUT
    env = worker["environment"]
    assert "OPENAI_API_KEY" in env and env["OPENAI_API_KEY"] is None  # passed through, unset
    assert env[health.ENV] in " ".join(worker["healthcheck"]["test"])


def test_flower_needs_auth_and_shares_the_broker(compose: dict[str, Any]) -> None:
    service = compose["services"]["flower"]
    env = service["environment"]
    assert ":?" in env[flower.AUTH_ENV], "Flower must refuse to start without basic auth"
    assert flower.UNAUTHENTICATED_ENV not in env
    assert env["REDIS_URL"] == compose["services"]["worker"]["environment"]["REDIS_URL"]


def test_compose_queue_is_the_workers_default(compose: dict[str, Any]) -> None:
    queue = resolve(compose["x-prelabel"]["environment"]["PRELABEL_QUEUE"])
    assert queue == Settings.model_fields["queue"].default


def test_every_compose_variable_is_in_env_example(compose: dict[str, Any]) -> None:
    text = (ROOT / "docker-compose.yml").read_text()
    used = {m["name"]: m["op"] for m in _VAR.finditer(text)}
    example = (ROOT / ".env.example").read_text()
    documented = set(re.findall(r"^#?\s?([A-Z_][A-Z0-9_]*)=", example, re.M))
    required = set(re.findall(r"^([A-Z_][A-Z0-9_]*)=", example, re.M))
    assert set(used) - documented == set(), "variables docker-compose.yml uses"
    assert documented - set(used) - env_prelabel_reads() == set(), "variables nobody reads"
    must = {name for name, op in used.items() if op == ":?"}
    assert must <= required, "required variables must be set (uncommented) in .env.example"


# --- Dockerfile ---------------------------------------------------------------------------


def dockerfile() -> list[tuple[str, str]]:
    lines = (ROOT / "Dockerfile").read_text().replace("\\\n", " ").splitlines()
    out = []
    for line in lines:
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def test_dockerfile_final_stage_is_slim_non_root_with_exec_entrypoint() -> None:
    instructions = dockerfile()
    stages = [i for i, (word, _) in enumerate(instructions) if word == "FROM"]
    final = instructions[stages[-1] :]
    assert "slim" in final[0][1]
    users = [rest for word, rest in final if word == "USER"]
    assert users, "the final stage sets no USER: it would run as root"
    uid = users[-1].split(":")[0]
    assert uid.isdigit() and int(uid) != 0, "USER must be a numeric non-root uid"
    entry = [rest for word, rest in final if word == "ENTRYPOINT"]
    assert len(entry) == 1
    form = json.loads(entry[0])  # exec form: a JSON array, so SIGTERM reaches prelabel
    assert form == ["prelabel"]
    cmd = json.loads([rest for word, rest in final if word == "CMD"][-1])
    check_command(cmd)


def test_dockerignore_keeps_secrets_and_the_venv_out() -> None:
    ignored = set((ROOT / ".dockerignore").read_text().split())
    assert {".env", ".venv", ".git"} <= ignored


def test_image_matches_the_python_the_project_supports() -> None:
    base = dockerfile()[0][1]
    version = re.search(r"python:(\d+\.\d+)", base)
    assert version is not None
    project = (ROOT / "pyproject.toml").read_text()
    floor = re.search(r'requires-python = ">=(\d+\.\d+)"', project)
    assert floor is not None
    assert tuple(map(int, version[1].split("."))) >= tuple(map(int, floor[1].split(".")))


# --- Kubernetes ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def manifests() -> list[dict[str, Any]]:
    docs: list[dict[str, Any]] = []
    for path in sorted(K8S.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc is None:
                continue
            assert isinstance(doc, dict), path
            doc["__file__"] = path.name
            docs.append(doc)
    return docs


def find(manifests: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    for doc in manifests:
        if doc["kind"] == kind and doc.get("metadata", {}).get("name") == name:
            return doc
    raise AssertionError(f"no {kind} {name} in deploy/k8s")


def pod_specs(manifests: list[dict[str, Any]]) -> Iterator[tuple[str, dict[str, Any]]]:
    for doc in manifests:
        if doc["kind"] in ("Deployment", "Job"):
            yield doc["metadata"]["name"], doc["spec"]["template"]["spec"]


def test_manifests_have_their_required_fields(manifests: list[dict[str, Any]]) -> None:
    kinds = {d["kind"] for d in manifests}
    assert {"Deployment", "Service", "Secret", "ConfigMap", "ScaledObject"} <= kinds
    for doc in manifests:
        where = f"{doc['__file__']} {doc.get('kind')}"
        if doc["kind"] == "Kustomization":
            listed = set(doc["resources"])
            on_disk = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
            assert listed <= on_disk and on_disk - listed == {"producer-job.yaml"}
            continue
        # Field names and types are the schemas' (test_deploy_schemas.py); a name is not
        # required by them (generateName), but every object here is referred to by it.
        assert doc["metadata"].get("name"), where
        if doc["kind"] == "Deployment":
            selector = doc["spec"]["selector"]["matchLabels"]
            labels = doc["spec"]["template"]["metadata"]["labels"]
            assert selector.items() <= labels.items(), where
        if doc["kind"] == "Service":
            targets = [
                d
                for d in manifests
                if d["kind"] == "Deployment"
                and doc["spec"]["selector"].items()
                <= d["spec"]["template"]["metadata"]["labels"].items()
            ]
            assert len(targets) == 1, f"{where} selects {len(targets)} deployments"
            ports = {
                p["name"]
                for c in targets[0]["spec"]["template"]["spec"]["containers"]
                for p in c.get("ports", [])
            }
            assert all(p["targetPort"] in ports for p in doc["spec"]["ports"]), where
    for name, spec in pod_specs(manifests):
        assert spec["securityContext"]["runAsNonRoot"] is True, name
        for container in spec["containers"]:
            assert container["image"] and container["args"], name
            assert container["resources"]["requests"]["memory"], name
            assert container["resources"]["limits"]["memory"], name


def test_k8s_commands_exist_and_match_compose(
    manifests: list[dict[str, Any]], compose: dict[str, Any]
) -> None:
    image = resolve(compose["x-prelabel"]["image"])
    services = compose["services"]
    for name, spec in pod_specs(manifests):
        for container in spec["containers"]:
            assert container["image"] == image, f"{name} runs another image than compose"
            check_command(container["args"])
            command = container["args"][0]
            twin = next((s for s in services.values() if s["command"][0] == command), None)
            assert twin is not None, f"`prelabel {command}` is in k8s but not in compose"
            if command in ("worker", "flower", "metrics"):
                assert container["args"] == [resolve(str(a)) for a in twin["command"]], name


def test_k8s_environment_is_what_prelabel_reads(manifests: list[dict[str, Any]]) -> None:
    allowed = env_prelabel_reads()
    secret = find(manifests, "Secret", "prelabel")
    config = find(manifests, "ConfigMap", "prelabel")
    assert set(secret["stringData"]) <= allowed
    assert set(config["data"]) <= allowed
    for name, spec in pod_specs(manifests):
        for container in spec["containers"]:
            env = {e["name"]: e for e in container.get("env", [])}
            assert set(env) <= allowed, name
            assert "REDIS_URL" in env, name
            for var in env.values():
                ref = var.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    assert ref["name"] == "prelabel" and ref["key"] in secret["stringData"]
            for source in container.get("envFrom", []):
                assert source["configMapRef"]["name"] == "prelabel"
        assert "FLOWER_UNAUTHENTICATED_API" not in str(spec)


def test_worker_pod_drains_within_the_broker_limits(manifests: list[dict[str, Any]]) -> None:
    spec = find(manifests, "Deployment", "prelabel-worker")["spec"]["template"]["spec"]
    grace = spec["terminationGracePeriodSeconds"]
    assert SOFT_TIME_LIMIT < TIME_LIMIT < grace < VISIBILITY_TIMEOUT
    (container,) = spec["containers"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    probe = " ".join(container["livenessProbe"]["exec"]["command"])
    assert health.ENV in probe and env[health.ENV]
    assert container["startupProbe"]["exec"] == container["livenessProbe"]["exec"]
    mounts = {m["mountPath"] for m in container["volumeMounts"]}
    assert str(Path(env[health.ENV]).parent) in mounts, "the probe file must be writable"


def mebibytes(quantity: str) -> float:
    units = {"Ki": 1 / 1024, "Mi": 1, "Gi": 1024, "M": 1e6 / 2**20, "G": 1e9 / 2**20}
    number, unit = re.fullmatch(r"(\d+(?:\.\d+)?)([A-Za-z]*)", quantity).groups()  # type: ignore[union-attr]
    return float(number) * units[unit]


def test_worker_resources_are_sized_to_its_concurrency(manifests: list[dict[str, Any]]) -> None:
    spec = find(manifests, "Deployment", "prelabel-worker")["spec"]["template"]["spec"]
    (container,) = spec["containers"]
    args = container["args"]
    concurrency = int(args[args.index("--concurrency") + 1])
    resources = container["resources"]
    # Measured (deploy/README.md): ~180 MiB for the main process, ~200 MiB per pool process.
    need = 256 * (concurrency + 1)
    assert mebibytes(resources["requests"]["memory"]) >= need
    assert mebibytes(resources["limits"]["memory"]) >= mebibytes(resources["requests"]["memory"])


def test_keda_watches_the_workers_queue_and_is_capped_by_the_rate(
    manifests: list[dict[str, Any]],
) -> None:
    scaled = find(manifests, "ScaledObject", "prelabel-worker")
    spec = scaled["spec"]
    worker = find(manifests, "Deployment", "prelabel-worker")
    assert spec["scaleTargetRef"]["name"] == worker["metadata"]["name"]
    triggers = {t["type"]: t for t in spec["triggers"]}
    assert set(triggers) == {"redis", "metrics-api"}
    trigger = triggers["redis"]
    queue = find(manifests, "ConfigMap", "prelabel")["data"]["PRELABEL_QUEUE"]
    assert trigger["metadata"]["listName"] == queue == Settings.model_fields["queue"].default
    auth = find(manifests, "TriggerAuthentication", trigger["authenticationRef"]["name"])
    secret = find(manifests, "Secret", "prelabel")
    assert all(ref["key"] in secret["stringData"] for ref in auth["spec"]["secretTargetRef"])

    # maxReplicaCount = the pods whose calls in flight the rate cap can keep busy.
    notes = scaled["metadata"]["annotations"]
    rpm = float(notes["prelabel/sizing-rpm"])
    latency = float(notes["prelabel/sizing-latency-seconds"])
    container = worker["spec"]["template"]["spec"]["containers"][0]
    concurrency = int(container["args"][container["args"].index("--concurrency") + 1])
    inflight = int(find(manifests, "ConfigMap", "prelabel")["data"]["PRELABEL_INFLIGHT"])
    assert spec["maxReplicaCount"] == math.ceil(rpm / 60 * latency / (concurrency * inflight))
    assert spec["minReplicaCount"] <= spec["maxReplicaCount"]


def test_keda_also_counts_the_shards_being_labeled(manifests: list[dict[str, Any]]) -> None:
    """The work-in-progress trigger reads a series the exporter really serves, unlabelled
    (KEDA's metrics-api scaler takes the first series that matches), from the metrics
    Service, at one shard per pod."""
    spec = find(manifests, "ScaledObject", "prelabel-worker")["spec"]
    (trigger,) = [t for t in spec["triggers"] if t["type"] == "metrics-api"]
    meta = trigger["metadata"]
    assert meta["format"] == "prometheus"
    name = re.match(r"[A-Za-z_:][A-Za-z0-9_:]*", meta["valueLocation"])
    assert name is not None and name[0] == meta["valueLocation"], "a bare metric name"
    served = {
        sample.name: sample.labels for family in exporter.families([]) for sample in family.samples
    }
    assert name[0] == exporter.SHARDS_LABELING and served[name[0]] == {}
    service = find(manifests, "Service", "prelabel-metrics")
    port = service["spec"]["ports"][0]["port"]
    assert meta["url"] == f"http://{service['metadata']['name']}:{port}/metrics"
    assert port == exporter.DEFAULT_PORT
    assert float(meta["targetValue"]) == 1 and trigger.get("metricType") == "AverageValue"


def test_flower_in_k8s_has_auth_and_a_service(manifests: list[dict[str, Any]]) -> None:
    deployment = find(manifests, "Deployment", "prelabel-flower")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    names = {e["name"] for e in container["env"]}
    assert flower.AUTH_ENV in names
    service = find(manifests, "Service", "prelabel-flower")
    assert service["spec"]["ports"][0]["port"] == 5555
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthcheck"
