"""examples/kubernetes/, checked offline: KubeRay's published CRD schemas, then what the files promise.

The API server checks a RayCluster or RayJob against its CRD's ``openAPIV3Schema``; so does this
test, against two releases vendored in ``kuberay_crds/`` (README there): 1.5.1, the first with
``authOptions``, and the newest. ``_structural`` reads the schema the way the server does: unknown
fields are errors (kubectl's default ``--validate=strict``), int-or-string takes either, nullable
admits null, list-type set / map entries are unique. CEL rules cannot run here, so no manifest may
set a field that has one. Not checked: the image, Secrets, scheduling, the operator's other checks.
"""

from __future__ import annotations

import functools
import gzip
import json
import re
import shlex
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
KUBE = ROOT / "examples" / "kubernetes"
CRDS = Path(__file__).parent / "kuberay_crds"
RELEASES = ("v1.5.1", "v1.7.0")
MANIFESTS = ("raycluster.yaml", "rayjob.yaml")
PLACEHOLDERS = {"YOUR-REGISTRY", "YOUR-BUCKET"}
MLFLOW_URI = "http://127.0.0.1:5000"
NAME_LIMITS = {"RayCluster": 53, "RayJob": 47}  # KubeRay's MaxRayClusterNameLength, MaxRayJobNameLength
SECRET_NAMES = re.compile(r"PASSWORD|SECRET|TOKEN|KEY|CREDENTIAL")
CONFIG = yaml.safe_load((ROOT / "cluster.yaml").read_text())  # the shape the manifests copy
# The Dockerfile's instructions: comments dropped, continuation lines joined.
DOCKERFILE = re.sub(r"(?m)^\s*#.*\n", "", (KUBE / "Dockerfile").read_text()).replace("\\\n", " ")
SUBSCHEMA = ("items", "additionalProperties", "not")
EMBEDDED = {"apiVersion": {"type": "string"}, "kind": {"type": "string"}, "metadata": {"type": "object"}}


def _documents(name: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all((KUBE / name).read_text()) if d]


def _resource(name: str) -> dict[str, Any]:
    (found,) = [d for d in _documents(name) if d["apiVersion"].startswith("ray.io/")]
    return found


def _structural(node: dict[str, Any]) -> dict[str, Any]:
    """One CRD schema node as plain JSON Schema, with the API server's Kubernetes extensions."""
    out = {k: _structural(v) if k in SUBSCHEMA and isinstance(v, dict) else v for k, v in node.items()}
    out |= {k: [_structural(s) for s in node[k]] for k in ("anyOf", "allOf", "oneOf") if k in node}
    if "properties" in node:
        out["properties"] = {k: _structural(v) for k, v in node["properties"].items()}
    if node.get("x-kubernetes-embedded-resource"):  # apiVersion, kind and metadata are implied
        out["properties"] = EMBEDDED | out.get("properties", {})
    if node.get("x-kubernetes-int-or-string") and "anyOf" not in node:
        out["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    if "properties" in out and not {"additionalProperties", "x-kubernetes-preserve-unknown-fields"} & set(node):
        out["additionalProperties"] = False  # no field pruned silently: kubectl's --validate=strict
    return {"anyOf": [out, {"type": "null"}]} if node.get("nullable") else out


def _list_type(validator: Any, kind: str, instance: Any, schema: dict[str, Any]) -> Iterator[Any]:
    """x-kubernetes-list-type: a ``set`` holds no item twice, a ``map`` no key (with its default) twice."""
    if kind not in ("set", "map") or not validator.is_type(instance, "array"):
        return
    if kind == "set":
        keys: list[Any] = [json.dumps(item, sort_keys=True) for item in instance]
    else:  # a missing key counts as its default (a port's protocol: TCP), as the server defaults it first
        fields, names = schema["items"].get("properties", {}), schema["x-kubernetes-list-map-keys"]
        keys = [tuple(item.get(n, fields.get(n, {}).get("default")) for n in names) for item in instance]
    if duplicates := sorted({str(k) for k in keys if keys.count(k) > 1}):
        yield jsonschema.ValidationError(f"duplicate {kind} entries: {duplicates}")


FORMATS = jsonschema.FormatChecker(formats=())
FORMATS.checks("int32")(lambda v: not isinstance(v, int) or -(2**31) <= v < 2**31)
FORMATS.checks("int64")(lambda v: not isinstance(v, int) or -(2**63) <= v < 2**63)
KubeValidator = jsonschema.validators.extend(jsonschema.Draft4Validator, {"x-kubernetes-list-type": _list_type})


@functools.cache
def _schema(release: str, kind: str, api_version: str) -> dict[str, Any]:
    """The served version of a vendored CRD that ``api_version`` names, read as the API server reads it."""
    group, version = api_version.split("/")
    crds = [json.loads(gzip.decompress(path.read_bytes())) for path in (CRDS / release).glob("*.json.gz")]
    (crd,) = [c for c in crds if c["spec"]["names"]["kind"] == kind and c["spec"]["group"] == group]
    (found,) = [v for v in crd["spec"]["versions"] if v["name"] == version and v["served"]]
    return _structural(found["schema"]["openAPIV3Schema"])


def _errors(resource: dict[str, Any], release: str) -> list[str]:
    validator = KubeValidator(_schema(release, resource["kind"], resource["apiVersion"]), format_checker=FORMATS)
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(resource)]


def _cel_fields(instance: Any, schema: dict[str, Any], path: str = "") -> list[str]:
    """The fields ``instance`` sets whose schema carries a CEL rule, which jsonschema cannot run."""
    found = [path] if "x-kubernetes-validations" in schema else []
    if isinstance(instance, dict):
        for key, value in instance.items():
            sub = schema.get("properties", {}).get(key, schema.get("additionalProperties"))
            found += _cel_fields(value, sub, f"{path}/{key}") if isinstance(sub, dict) else []
    elif isinstance(instance, list) and isinstance(schema.get("items"), dict):
        found += [p for i, item in enumerate(instance) for p in _cel_fields(item, schema["items"], f"{path}/{i}")]
    return found


def _cluster(name: str) -> tuple[str, dict[str, Any]]:
    """The RayCluster a manifest runs on: itself, or the one its clusterSelector names."""
    resource = _resource(name)
    wanted = resource["spec"].get("clusterSelector", {}).get("ray.io/cluster", resource["metadata"]["name"])
    (found,) = [r for r in map(_resource, MANIFESTS) if r["kind"] == "RayCluster" and r["metadata"]["name"] == wanted]
    return wanted, found["spec"]


def _pods(spec: dict[str, Any]) -> dict[str, dict[str, Any]]:
    groups = {g["groupName"]: g["template"]["spec"] for g in spec["workerGroupSpecs"]}
    return {"head": spec["headGroupSpec"]["template"]["spec"], **groups}


def _containers(spec: dict[str, Any]) -> list[tuple[str, int, dict[str, Any]]]:
    return [(pod, i, c) for pod, p in _pods(spec).items() for i, c in enumerate(p["containers"])]


def _env(container: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["name"]: e for e in container.get("env", [])}


def _pins(text: str) -> dict[str, str]:
    return dict(re.findall(r'"?\b([a-z]+(?:\[[a-z,]+\])?)==([\w.]+)"?', text))


@pytest.mark.parametrize("release", RELEASES)
@pytest.mark.parametrize("manifest", MANIFESTS)
def test_the_crd_accepts_the_manifest(manifest: str, release: str):
    resource = _resource(manifest)
    assert _errors(resource, release) == []
    cel = _cel_fields(resource, _schema(release, resource["kind"], resource["apiVersion"]))
    assert cel == [], "fields with CEL rules, unchecked here: try kubectl apply --dry-run=server"
    name = resource["metadata"]["name"]
    assert re.fullmatch(r"[a-z]([-a-z0-9]*[a-z0-9])?", name) and len(name) <= NAME_LIMITS[resource["kind"]]


DELETE = object()
HEAD, GPU = "spec/headGroupSpec/template/spec/containers/0", "spec/workerGroupSpecs/1/template/spec/containers/0"
BROKEN = {  # an edit of one manifest (its path, the new value) that the API server refuses
    "cpus-as-a-number": ("raycluster.yaml", "spec/headGroupSpec/rayStartParams/num-cpus", 4),  # a map of strings
    "misspelled-field": ("raycluster.yaml", "spec/workerGroupSpecs/0/maxReplica", 3),
    "group-without-a-name": ("raycluster.yaml", "spec/workerGroupSpecs/1/groupName", DELETE),
    "auth-mode-typo": ("raycluster.yaml", "spec/authOptions/mode", "tokens"),
    "quantity-with-a-space": ("raycluster.yaml", f"{GPU}/resources/limits/memory", "28 GiB"),
    "same-port-twice": ("raycluster.yaml", f"{HEAD}/ports/2", {"containerPort": 6379, "name": "again"}),
    "port-beyond-int32": ("raycluster.yaml", f"{HEAD}/ports/0/containerPort", 2**31),
    "job-field-misspelled": ("rayjob.yaml", "spec/entryPoint", "tunefleet search spec.yaml"),
    "selector-not-a-map": ("rayjob.yaml", "spec/clusterSelector", "tunefleet"),
}


def _edited(manifest: str, path: str, value: Any) -> dict[str, Any]:
    resource = _resource(manifest)
    *parents, last = path.split("/")
    node = functools.reduce(lambda n, k: n[int(k)] if isinstance(n, list) else n[k], parents, resource)
    if value is DELETE:
        del node[last]
    elif isinstance(node, list):
        node[int(last) : int(last) + 1] = [value]  # replace, or append at the end
    else:
        node[last] = value
    return resource


@pytest.mark.parametrize("release", RELEASES)
@pytest.mark.parametrize("edit", BROKEN.values(), ids=BROKEN.keys())
def test_the_crd_rejects_a_broken_copy(edit: tuple[str, str, Any], release: str):
    """The check above can fail: each of these edits is refused, as the API server refuses it."""
    assert _errors(_edited(*edit), release)


def test_auth_options_in_both_releases():
    """Both take authOptions.mode: token; only 1.6 on takes secretName, which is why two are checked."""
    for release in RELEASES:
        auth = _schema(release, "RayCluster", "ray.io/v1")["properties"]["spec"]["properties"]["authOptions"]
        assert "token" in auth["properties"]["mode"]["enum"]
    resource = _edited("raycluster.yaml", "spec/authOptions/secretName", "tunefleet-ray-token")
    assert _errors(resource, "v1.5.1") and not _errors(resource, "v1.7.0")
    assert all(release in (CRDS / "README.md").read_text() for release in RELEASES)


@pytest.mark.parametrize("manifest", MANIFESTS)
def test_token_auth_on_and_ray_pinned(manifest: str):
    _, spec = _cluster(manifest)
    assert spec["authOptions"] == {"mode": "token"}  # the operator makes the token and hands it out
    ray = _pins(" ".join(CONFIG["setup_commands"]))["ray[default,tune]"]
    assert spec["rayVersion"] == ray
    assert re.search(rf"^FROM rayproject/ray:{re.escape(ray)}-", DOCKERFILE, flags=re.MULTILINE)
    assert not [c for _, _, c in _containers(spec) if {"RAY_AUTH_MODE", "RAY_AUTH_TOKEN"} & set(_env(c))]


@pytest.mark.parametrize("manifest", MANIFESTS)
def test_the_groups_are_cluster_yamls_types(manifest: str):
    _, spec = _cluster(manifest)
    config, types = CONFIG, CONFIG["available_node_types"]
    assert spec["autoscalerOptions"]["idleTimeoutSeconds"] == 60 * config["idle_timeout_minutes"]
    head_cpus = types[config["head_node_type"]]["resources"]["CPU"]
    assert spec["headGroupSpec"]["rayStartParams"]["num-cpus"] == str(head_cpus)
    groups = {g["groupName"]: g for g in spec["workerGroupSpecs"]}
    assert {n.replace("-", "_") for n in groups} | {config["head_node_type"]} == set(types)
    for name, pod in _pods(spec).items():
        node_type = types[config["head_node_type"] if name == "head" else name.replace("-", "_")]
        ray = pod["containers"][0]  # KubeRay's RayContainerIndex: Ray first, sidecars after
        assert ray["name"] == ("ray-head" if name == "head" else "ray-worker")
        assert ray["resources"]["requests"] == ray["resources"]["limits"], name  # what Ray sizes itself by
        gpus = int(ray["resources"]["limits"].get("nvidia.com/gpu", 0))
        assert gpus == node_type["resources"]["GPU"], name
        assert any(t["key"] == "nvidia.com/gpu" for t in pod.get("tolerations", [])) == (gpus > 0), name
        group = groups.get(name, {"minReplicas": 0, "maxReplicas": 0, "rayStartParams": {}})
        assert (group["minReplicas"], group["maxReplicas"]) == (node_type["min_workers"], node_type["max_workers"])
        assert not group.get("resources") or not group["rayStartParams"], name  # the operator refuses both
    assert any(_pods(spec)[name]["containers"][0]["resources"]["limits"].get("nvidia.com/gpu") for name in groups)


@pytest.mark.parametrize("manifest", MANIFESTS)
def test_mlflow_runs_on_the_head_only(manifest: str):
    from mlflow.cli import cli

    name, spec = _cluster(manifest)
    ((pod, index, server),) = [(pod, i, c) for pod, i, c in _containers(spec) if c.get("command", [""])[0] == "mlflow"]
    assert pod == "head" and index > 0  # a sidecar; the Ray container stays first
    options = {o for p in cli.commands["server"].params for o in (*p.opts, *p.secondary_opts)}
    assert {a.split("=", 1)[0] for a in server["args"]} <= options, "a flag `mlflow server --help` does not list"
    assert {"--app-name=basic-auth", "--serve-artifacts", "--port=5000"} <= set(server["args"])
    store = _env(server)["MLFLOW_BACKEND_STORE_URI"]
    on_claim = store.get("value", "").startswith(f"sqlite:///{server['workingDir']}/")
    assert on_claim or "secretKeyRef" in store.get("valueFrom", {})
    assert server["workingDir"] in {m["mountPath"] for m in server["volumeMounts"]}  # and basic_auth.db
    (service,) = [d for d in _documents("raycluster.yaml") if d["kind"] == "Service"]
    assert service["spec"]["type"] == "ClusterIP" and spec["headGroupSpec"]["serviceType"] == "ClusterIP"
    assert service["spec"]["selector"] == {"ray.io/cluster": name, "ray.io/node-type": "head"}
    assert service["spec"]["ports"][0]["targetPort"] in {p["name"] for p in server["ports"]}
    for group, pod_spec in _pods(spec).items():  # one tracking URI on every pod, as on cluster.yaml's nodes
        assert _env(pod_spec["containers"][0])["MLFLOW_TRACKING_URI"]["value"] == MLFLOW_URI
        forwards = [c["command"][1:] for c in pod_spec["containers"] if c.get("command", [""])[0] == "socat"]
        target = f"TCP:{service['metadata']['name']}:5000"
        assert forwards == ([] if group == "head" else [["TCP-LISTEN:5000,bind=127.0.0.1,reuseaddr,fork", target]])


def test_no_secret_in_the_files():
    texts = {name: (KUBE / name).read_text() for name in (*MANIFESTS, "Dockerfile")}
    for name in MANIFESTS:
        assert not [d for d in _documents(name) if d["kind"] == "Secret"], name
        env = [e for _, _, c in _containers(_cluster(name)[1]) for e in c.get("env", [])]
        secrets = [e for e in env if SECRET_NAMES.search(e["name"])]
        assert secrets and all("secretKeyRef" in e.get("valueFrom", {}) for e in secrets), name
    for name, text in texts.items():
        assert not re.search(r"://[^/\s:@]+:[^/\s@]+@", text), f"{name}: credentials in a URI"
    used = {m for text in texts.values() for m in re.findall(r"YOUR-[A-Z0-9-]+", text)}
    assert used == PLACEHOLDERS
    doc = (ROOT / "docs" / "CLUSTER.md").read_text()
    assert all(p in doc for p in PLACEHOLDERS) and "examples/kubernetes/" in doc


def test_the_image_has_cluster_yamls_pins_and_checkout():
    expected = _pins(" ".join(CONFIG["setup_commands"] + CONFIG["head_setup_commands"]))
    run_pips = " ".join(line for line in DOCKERFILE.splitlines() if line.startswith("RUN pip install"))
    assert _pins(run_pips) == expected
    assert {"torch", "torchvision", "ray[default,tune]", "mlflow", "mlflow[auth]"} <= set(expected)
    copied = {w for line in DOCKERFILE.splitlines() if line.startswith("COPY ") for w in line.split()[1:-1]}
    needed = {
        local.removeprefix("./") for remote, local in CONFIG["file_mounts"].items() if remote.startswith("~/tunefleet/")
    }
    assert needed and needed <= copied  # the checkout as cluster.yaml mounts it
    images = {c["image"] for m in MANIFESTS for _, _, c in _containers(_cluster(m)[1])}
    assert len(images) == 1  # one image, pulled once per node, one Python and Ray everywhere


def test_the_rayjob_runs_a_search_on_that_cluster():
    job = _resource("rayjob.yaml")["spec"]
    assert "rayClusterSpec" not in job and job.get("submissionMode") != "SidecarMode"  # KubeRay refuses both
    assert not job.get("shutdownAfterJobFinishes") and not job.get("backoffLimit")
    words = shlex.split(job["entrypoint"])
    assert words[:2] == ["tunefleet", "search"]
    spec_path = ROOT / Path(words[2]).relative_to("/opt/tunefleet")
    assert spec_path.is_file() and re.search(r"^COPY .* examples examples$", DOCKERFILE, flags=re.MULTILINE)
    assert words[words.index("--tracking-uri") + 1] == MLFLOW_URI
    assert words[words.index("--storage") + 1].startswith("s3://")
    # What `tunefleet submit` gives a job (search/service/_jobs.py, read, not imported): the metadata
    # `tunefleet status` lists searches by, and a stop that is Ctrl-C with time to close the runs.
    jobs = (ROOT / "search" / "service" / "_jobs.py").read_text()
    keys = re.search(r'^META_EXPERIMENT, META_TRACKING = "([^"]+)", "([^"]+)"', jobs, flags=re.MULTILINE)
    experiment = yaml.safe_load(spec_path.read_text())["tracking"]["experiment"]
    assert keys and job["metadata"] == {keys[1]: experiment, keys[2]: MLFLOW_URI}
    env = yaml.safe_load(job["runtimeEnvYAML"])["env_vars"]
    stop_wait = re.search(r"^STOP_WAIT_S = (\d+)", jobs, flags=re.MULTILINE)
    expected = {"PYTHONUNBUFFERED": "1", "RAY_JOB_STOP_SIGNAL": "SIGINT"}
    assert stop_wait and env == expected | {"RAY_JOB_STOP_WAIT_TIME_S": stop_wait[1]}
