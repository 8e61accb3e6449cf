"""Checks for the cluster files users run: KubeRay manifests against the KubeRay v1.7.0 CRD schemas
(strict: an unknown field is an error, as with `kubectl apply --validate=strict`), the checks KubeRay's
operator makes beyond the schema, what birdgen-ray needs of its Ray clusters, and the loaders of the
manifests in jobs/. The tests live in test_cluster_files.py.

The CRDs live in shared/reference/kuberay-v1.7.0-crds/, beside the repository (override the shared
folder with BIRDGEN_SHARED_DIR).
"""

from __future__ import annotations

import os
import re
import shlex
from pathlib import Path

import jsonschema
import yaml

REPO = Path(__file__).resolve().parents[1]
JOBS = REPO / "jobs"


# --- where the reference CRDs are -----------------------------------------------------------------


def shared_dir() -> Path:
    return Path(os.environ.get("BIRDGEN_SHARED_DIR") or REPO.parent / "shared")


CRD_DIR = shared_dir() / "reference" / "kuberay-v1.7.0-crds"
FAST_YAML = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # the CRDs are 3 MB of YAML
CRD_FILES = {
    "RayCluster": "ray.io_rayclusters.yaml",
    "RayJob": "ray.io_rayjobs.yaml",
    "RayCronJob": "ray.io_raycronjobs.yaml",
}


def _strict(schema):
    """Reject unknown fields wherever the CRD lists the fields (the API server's strict validation)."""
    if isinstance(schema, list):
        return [_strict(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out = {key: _strict(value) for key, value in schema.items()}
    if (
        "properties" in out
        and "additionalProperties" not in out
        and not out.get("x-kubernetes-preserve-unknown-fields")
    ):
        out["additionalProperties"] = False
    return out


INT_FORMATS = jsonschema.FormatChecker()
INT_FORMATS.checks("int32")(lambda v: not isinstance(v, int) or -(2**31) <= v < 2**31)
INT_FORMATS.checks("int64")(lambda v: not isinstance(v, int) or -(2**63) <= v < 2**63)


def load_crd_validators(crd_dir: Path = CRD_DIR) -> dict[tuple[str, str], jsonschema.Draft7Validator]:
    """(apiVersion, kind) -> validator of that CRD version's openAPIV3Schema."""
    validators = {}
    for kind, file_name in CRD_FILES.items():
        crd = yaml.load((crd_dir / file_name).read_text(), Loader=FAST_YAML)
        assert crd["spec"]["names"]["kind"] == kind
        for version in crd["spec"]["versions"]:
            if version["served"]:
                schema = _strict(version["schema"]["openAPIV3Schema"])
                api_version = f"{crd['spec']['group']}/{version['name']}"
                validators[(api_version, kind)] = jsonschema.Draft7Validator(schema, format_checker=INT_FORMATS)
    return validators


def crd_errors(manifest: dict, crds) -> list[str]:
    key = (manifest.get("apiVersion"), manifest.get("kind"))
    if key not in crds:
        return [f"no served KubeRay v1.7.0 CRD for {key}"]
    errors = sorted(crds[key].iter_errors(manifest), key=lambda e: list(map(str, e.absolute_path)))
    return [f"{'.'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}" for e in errors]


# --- what KubeRay's operator checks beyond the schema (ray-operator/controllers/ray/utils/validation.go)

MAX_RAYJOB_NAME = 47  # RayCluster name limit 53 minus the 6 characters KubeRay appends
DNS1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
SUBMISSION_MODES = {"K8sJobMode", "HTTPMode", "InteractiveMode", "SidecarMode"}
RAY_START_RESOURCE_PARAMS = ("num-cpus", "num-gpus", "memory", "resources")


def rayjob_name_problems(metadata: dict, suffix: int = 0) -> list[str]:
    """RayJob names: DNS-1035 labels of at most 47 characters, counting what a controller appends."""
    name = metadata.get("name") or metadata.get("generateName", "").rstrip("-") + "-x"
    length = len(metadata.get("name") or metadata.get("generateName", "")) + (5 if "generateName" in metadata else 0)
    problems = []
    if not DNS1035.match(name):
        problems.append(f"name {name!r} is not a DNS-1035 label")
    if length + suffix > MAX_RAYJOB_NAME:
        problems.append(f"name {name!r} makes RayJob names of {length + suffix} > {MAX_RAYJOB_NAME} characters")
    return problems


def kuberay_rayjob_problems(spec: dict) -> list[str]:
    problems = []
    if spec.get("ttlSecondsAfterFinished", 0) > 0 and not spec.get("shutdownAfterJobFinishes"):
        problems.append("ttlSecondsAfterFinished needs shutdownAfterJobFinishes: true")
    if spec.get("submissionMode", "K8sJobMode") not in SUBMISSION_MODES:
        problems.append(f"submissionMode {spec['submissionMode']!r} is not one of {sorted(SUBMISSION_MODES)}")
    if spec.get("submissionMode") == "InteractiveMode" and spec.get("backoffLimit", 0) > 0:
        problems.append("backoffLimit is incompatible with InteractiveMode")
    if spec.get("backoffLimit", 0) < 0 or spec.get("activeDeadlineSeconds", 1) <= 0:
        problems.append("backoffLimit must be >= 0 and activeDeadlineSeconds > 0")
    if "rayClusterSpec" not in spec and not spec.get("clusterSelector"):
        problems.append("one of rayClusterSpec or clusterSelector must be set")
    runtime_env = yaml.safe_load(spec.get("runtimeEnvYAML") or "{}")
    if not isinstance(runtime_env, dict):
        problems.append("runtimeEnvYAML is not a YAML mapping")
    cluster = spec.get("rayClusterSpec", {})
    groups = [("head", cluster.get("headGroupSpec", {}))] + [
        (g.get("groupName"), g) for g in cluster.get("workerGroupSpecs", [])
    ]
    for name, group in groups:
        if not group.get("template", {}).get("spec", {}).get("containers"):
            problems.append(f"group {name}: needs at least one container")
        params = group.get("rayStartParams", {})
        if group.get("resources") and any(params.get(k) for k in RAY_START_RESOURCE_PARAMS):
            problems.append(f"group {name}: resources set in both rayStartParams and resources")
        if "labels" in params:
            problems.append(f"group {name}: rayStartParams['labels'] is not supported")
    return problems


# --- what birdgen-ray needs of its Ray clusters ----------------------------------------------------


def dockerfile_ray_version() -> str:
    match = re.search(r"^FROM rayproject/ray:(\d+\.\d+\.\d+)-py311-gpu$", (JOBS / "Dockerfile").read_text(), re.M)
    assert match, "jobs/Dockerfile must start FROM rayproject/ray:<version>-py311-gpu"
    return match.group(1)


def _pod_shm_problems(where: str, pod: dict) -> list[str]:
    memory_volumes = {v["name"] for v in pod.get("volumes", []) if v.get("emptyDir", {}).get("medium") == "Memory"}
    container = pod["containers"][0]
    mounted = {m["name"] for m in container.get("volumeMounts", []) if m["mountPath"] == "/dev/shm"}
    return [] if mounted & memory_volumes else [f"{where}: /dev/shm is not an emptyDir with medium Memory"]


def birdgen_cluster_problems(cluster: dict) -> list[str]:
    problems = []
    head = cluster["headGroupSpec"]
    if head.get("rayStartParams", {}).get("num-gpus") != "0":
        problems.append("head: rayStartParams num-gpus must be '0' (the head does no GPU work)")
    problems += _pod_shm_problems("head", head["template"]["spec"])
    gpu_groups = 0
    for group in cluster.get("workerGroupSpecs", []):
        pod = group["template"]["spec"]
        resources = pod["containers"][0].get("resources", {})
        gpus = resources.get("limits", {}).get("nvidia.com/gpu")
        if gpus is not None and int(gpus) >= 1:
            gpu_groups += 1
            requested = resources.get("requests", {}).get("nvidia.com/gpu", gpus)
            if str(requested) != str(gpus):
                problems.append(f"group {group['groupName']}: nvidia.com/gpu request {requested} != limit {gpus}")
            if not group.get("minReplicas", 0) <= group.get("replicas", 0) <= group["maxReplicas"]:
                problems.append(f"group {group['groupName']}: needs minReplicas <= replicas <= maxReplicas")
        problems += _pod_shm_problems(f"group {group['groupName']}", pod)
    if gpu_groups == 0:
        problems.append("no worker group with an nvidia.com/gpu limit")
    if not cluster.get("enableInTreeAutoscaling"):
        problems.append("enableInTreeAutoscaling must be true (GPU workers scale with the work)")
    images = {
        c["image"] for g in [head, *cluster.get("workerGroupSpecs", [])] for c in g["template"]["spec"]["containers"]
    }
    if len(images) != 1:
        problems.append(f"head and workers must run one image, got {sorted(images)}")
    if cluster.get("rayVersion") != dockerfile_ray_version():
        problems.append(
            f"rayVersion {cluster.get('rayVersion')} != the Ray of jobs/Dockerfile {dockerfile_ray_version()}"
        )
    return problems


def submit_options() -> set[str]:
    import typer.main

    from birdgen_ray.cli import app

    command = typer.main.get_command(app).commands["submit"]
    return {opt for param in command.params for opt in (*param.opts, *param.secondary_opts)}


def entrypoint_problems(entrypoint: str) -> list[str]:
    words = shlex.split(entrypoint)
    if words[:2] != ["birdgen-ray", "submit"]:
        return [f"entrypoint must run `birdgen-ray submit`, got {entrypoint!r}"]
    problems = []
    known = submit_options()
    unknown = [w.split("=")[0] for w in words[2:] if w.startswith("--") and w.split("=")[0] not in known]
    if unknown:
        problems.append(f"entrypoint options unknown to `birdgen-ray submit`: {unknown}")
    if "--address" in words:
        problems.append("entrypoint must not pass --address: inside a Ray job ray.init() joins via RAY_ADDRESS")
    out = words[words.index("--out") + 1] if "--out" in words else ""
    if not re.match(r"^(s3|gs)://", out):
        problems.append(f"--out must be object storage (s3:// or gs://), got {out!r}")
    return problems


def load_manifests() -> dict[str, dict]:
    """Every RayJob/RayCronJob the repository ships, by a readable name."""
    cron_docs = list(yaml.safe_load_all((JOBS / "cronjob-rayjob.yaml").read_text()))
    config_map = next(d for d in cron_docs if d["kind"] == "ConfigMap")
    return {
        "rayjob.yaml": yaml.safe_load((JOBS / "rayjob.yaml").read_text()),
        "raycronjob.yaml": yaml.safe_load((JOBS / "raycronjob.yaml").read_text()),
        "cronjob-rayjob.yaml (ConfigMap)": yaml.safe_load(config_map["data"]["rayjob.yaml"]),
    }


def rayjob_spec(manifest: dict) -> dict:
    return manifest["spec"]["jobTemplate"] if manifest["kind"] == "RayCronJob" else manifest["spec"]


# --- the Kubernetes CronJob that creates a RayJob ---------------------------------------------------


def cronjob_docs() -> dict[str, dict]:
    return {d["kind"]: d for d in yaml.safe_load_all((JOBS / "cronjob-rayjob.yaml").read_text())}
