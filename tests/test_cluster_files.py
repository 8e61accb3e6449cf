"""The files users run on real clusters are valid: cluster.yaml (and its GCP twin) against Ray's own
autoscaler schema, every KubeRay manifest in jobs/ against the KubeRay v1.7.0 CRD schemas (strict: an
unknown field is an error, as with `kubectl apply --validate=strict`) plus the checks KubeRay's
operator makes, and the Kubernetes CronJob against the Kubernetes API schemas.

The checkers and manifest loaders are in k8s_checks.py. The CRDs live in
shared/reference/kuberay-v1.7.0-crds/, beside the repository (override the shared folder with
BIRDGEN_SHARED_DIR); those tests skip only when that folder is absent.
"""

from __future__ import annotations

import copy
import json
import os
import shlex
import subprocess
import sys
import textwrap
import zoneinfo
from pathlib import Path

import jsonschema
import kubernetes_validate
import pytest
import yaml
from croniter import croniter

from tests.k8s_checks import (
    CRD_DIR,
    JOBS,
    REPO,
    birdgen_cluster_problems,
    crd_errors,
    cronjob_docs,
    dockerfile_ray_version,
    entrypoint_problems,
    kuberay_rayjob_problems,
    load_crd_validators,
    load_manifests,
    rayjob_name_problems,
    rayjob_spec,
)

CLUSTER_CONFIGS = [REPO / "cluster.yaml", JOBS / "cluster-gcp.yaml"]
K8S_VERSION = "1.30"  # oldest Kubernetes the manifests target (CronJob timeZone is GA from 1.27)

# GPUs per machine type used in the cluster configs; a new type must be added here.
GPUS_PER_MACHINE = {
    "m5.2xlarge": 0,
    "g5.2xlarge": 1,
    "p4d.24xlarge": 8,
    "n2-standard-8": 0,
    "g2-standard-8": 1,
    "a2-highgpu-8g": 8,
}


@pytest.fixture(scope="module")
def crds() -> dict[tuple[str, str], jsonschema.Draft7Validator]:
    """(apiVersion, kind) -> validator of that CRD version's openAPIV3Schema."""
    if not CRD_DIR.is_dir():
        pytest.skip(f"KubeRay v1.7.0 CRDs not found at {CRD_DIR} (set BIRDGEN_SHARED_DIR to the shared folder)")
    return load_crd_validators()


# --- Ray cluster launcher configs ------------------------------------------------------------------


@pytest.fixture(scope="module")
def ray_schema() -> dict:
    import ray.autoscaler

    path = Path(ray.autoscaler.__file__).parent / "ray-schema.json"
    return json.loads(path.read_text())


@pytest.mark.parametrize("path", CLUSTER_CONFIGS, ids=lambda p: p.name)
def test_cluster_config_passes_ray_autoscaler_validation(path, ray_schema):
    from ray.autoscaler._private.util import prepare_config, validate_config

    config = yaml.safe_load(path.read_text())
    jsonschema.validate(config, ray_schema)
    # What `ray up` does before it touches the cloud: merge the provider defaults, then validate.
    validate_config(prepare_config(copy.deepcopy(config)))


@pytest.mark.parametrize("path", CLUSTER_CONFIGS, ids=lambda p: p.name)
def test_cluster_config_has_cpu_head_and_autoscaling_gpu_workers(path):
    config = yaml.safe_load(path.read_text())
    node_types = config["available_node_types"]
    head = node_types[config["head_node_type"]]
    assert head["resources"].get("GPU") == 0 and head["resources"].get("CPU") == 0, "the head runs no tasks"
    assert "--shm-size" in " ".join(config["docker"]["head_run_options"])
    assert config["idle_timeout_minutes"] > 0

    gpu_types = []
    for name, node_type in node_types.items():
        machine = node_type["node_config"].get("InstanceType") or node_type["node_config"].get("machineType")
        assert machine in GPUS_PER_MACHINE, f"{name}: add {machine} to GPUS_PER_MACHINE"
        # Declared explicitly for every type: GCP cannot detect GPUs, and the head must offer none.
        assert node_type["resources"].get("GPU") == GPUS_PER_MACHINE[machine], f"{name}: GPU resources"
        if name != config["head_node_type"]:
            assert GPUS_PER_MACHINE[machine] >= 1, f"{name}: worker types are GPU types"
            assert node_type["min_workers"] < node_type["max_workers"] <= config["max_workers"], f"{name}: autoscaling"
            assert "--shm-size" in " ".join(node_type["docker"]["worker_run_options"]), f"{name}: shm size"
            gpu_types.append(name)
    # At least one GPU worker is up when a job starts: the runner picks GPU actors only if it sees a GPU.
    assert any(node_types[name]["min_workers"] >= 1 for name in gpu_types)

    assert config["docker"]["image"] == f"rayproject/ray:{dockerfile_ray_version()}-py311-gpu"
    assert any("pip install" in c and "birdgen-ray" in c for c in config["setup_commands"])


def test_ray_schema_rejects_broken_cluster_configs(ray_schema):
    config = yaml.safe_load((REPO / "cluster.yaml").read_text())
    fractional = copy.deepcopy(config)
    fractional["available_node_types"]["gpu_g5"]["resources"]["GPU"] = 0.5
    typo = copy.deepcopy(config)
    typo["idle_timeout_minute"] = typo.pop("idle_timeout_minutes")
    for broken in (fractional, typo):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(broken, ray_schema)


# --- KubeRay manifests -----------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(load_manifests()))
def test_kuberay_manifest_is_valid(name, crds):
    manifest = load_manifests()[name]
    assert crd_errors(manifest, crds) == []
    spec = rayjob_spec(manifest)
    assert kuberay_rayjob_problems(spec) == []
    assert birdgen_cluster_problems(spec["rayClusterSpec"]) == []
    assert entrypoint_problems(spec["entrypoint"]) == []
    # One job, one cluster: torn down after the job, retried on failure, bounded in time.
    assert spec["shutdownAfterJobFinishes"] is True and spec["ttlSecondsAfterFinished"] > 0
    assert spec["backoffLimit"] >= 1 and spec["activeDeadlineSeconds"] > 0
    assert spec["submissionMode"] == "K8sJobMode"
    suffix = 6 if manifest["kind"] == "RayCronJob" else 0  # RayCronJob appends -<5 chars> per run
    assert rayjob_name_problems(manifest["metadata"], suffix) == []


def test_crd_validation_catches_mistakes(crds):
    good = load_manifests()["rayjob.yaml"]
    assert crd_errors(good, crds) == []
    typo = copy.deepcopy(good)
    typo["spec"]["shutdownAfterJobFinish"] = typo["spec"].pop("shutdownAfterJobFinishes")
    wrong_type = copy.deepcopy(good)
    wrong_type["spec"]["backoffLimit"] = "2"
    bad_quantity = copy.deepcopy(good)
    worker = bad_quantity["spec"]["rayClusterSpec"]["workerGroupSpecs"][0]["template"]["spec"]["containers"][0]
    worker["resources"]["limits"]["memory"] = "28 GB"
    misplaced = copy.deepcopy(good)
    misplaced["spec"]["rayClusterSpec"]["headGroupSpec"]["template"]["spec"]["containers"][0]["shm"] = "8Gi"
    for broken, field in [
        (typo, "shutdownAfterJobFinish"),
        (wrong_type, "backoffLimit"),
        (bad_quantity, "memory"),
        (misplaced, "shm"),
    ]:
        errors = crd_errors(broken, crds)
        assert errors and any(field in e for e in errors), errors
    no_shutdown = copy.deepcopy(good)["spec"]
    no_shutdown["shutdownAfterJobFinishes"] = False
    assert kuberay_rayjob_problems(no_shutdown) == ["ttlSecondsAfterFinished needs shutdownAfterJobFinishes: true"]
    cpu_head = copy.deepcopy(good)["spec"]["rayClusterSpec"]
    del cpu_head["headGroupSpec"]["rayStartParams"]["num-gpus"]
    assert any("num-gpus" in p for p in birdgen_cluster_problems(cpu_head))
    assert entrypoint_problems("birdgen-ray submit p.parquet --out out/ --no-such-flag 1") == [
        "entrypoint options unknown to `birdgen-ray submit`: ['--no-such-flag']",
        "--out must be object storage (s3:// or gs://), got 'out/'",
    ]


def test_all_manifests_run_the_same_cluster_and_command():
    manifests = list(load_manifests().values())
    specs = [rayjob_spec(m) for m in manifests]
    assert all(s["rayClusterSpec"] == specs[0]["rayClusterSpec"] for s in specs)
    assert all(s["entrypoint"] == specs[0]["entrypoint"] for s in specs)
    assert all(yaml.safe_load(s["runtimeEnvYAML"]) == yaml.safe_load(specs[0]["runtimeEnvYAML"]) for s in specs)


@pytest.mark.parametrize("name", list(load_manifests()))
def test_entrypoint_reaches_birdgen_ray_submit_intact(name):
    """`birdgen-ray submit` itself parses each entrypoint: object-storage URIs arrive unchanged."""
    import typer.main

    from birdgen_ray.cli import app

    words = shlex.split(rayjob_spec(load_manifests()[name])["entrypoint"])
    command = typer.main.get_command(app).commands["submit"]
    params = command.make_context("submit", words[2:]).params
    assert str(params["plan_path"]) == words[2]  # RunConfig.plan_path: the PLAN argument
    assert params["out"] == words[words.index("--out") + 1]


def test_raycronjob_schedule():
    manifest = load_manifests()["raycronjob.yaml"]
    assert croniter.is_valid(manifest["spec"]["schedule"]) and len(manifest["spec"]["schedule"].split()) == 5
    zoneinfo.ZoneInfo(manifest["spec"]["timeZone"])
    assert "jobId" not in manifest["spec"]["jobTemplate"], "every scheduled run gets its own cluster and id"


# --- the Kubernetes CronJob that creates a RayJob ---------------------------------------------------


def test_cronjob_manifests_are_valid_kubernetes():
    docs = cronjob_docs()
    assert set(docs) == {"ServiceAccount", "Role", "RoleBinding", "ConfigMap", "CronJob"}
    for doc in [*docs.values(), yaml.safe_load((JOBS / "service-account.yaml").read_text())]:
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)

    cron = docs["CronJob"]["spec"]
    assert cron["concurrencyPolicy"] == "Forbid"
    assert croniter.is_valid(cron["schedule"])
    zoneinfo.ZoneInfo(cron["timeZone"])
    assert cron["jobTemplate"]["spec"]["backoffLimit"] == 0, "a retried launcher would start a second RayJob"
    pod = cron["jobTemplate"]["spec"]["template"]["spec"]

    # The launcher's identity may create and read RayJobs.
    assert pod["serviceAccountName"] == docs["ServiceAccount"]["metadata"]["name"]
    binding = docs["RoleBinding"]
    assert binding["roleRef"]["name"] == docs["Role"]["metadata"]["name"]
    assert {"kind": "ServiceAccount", "name": pod["serviceAccountName"]} in binding["subjects"]
    (rule,) = docs["Role"]["rules"]
    assert rule["apiGroups"] == ["ray.io"] and rule["resources"] == ["rayjobs"]
    assert {"create", "get"} <= set(rule["verbs"])

    # The RayJob template is mounted where the script reads it.
    container = pod["containers"][0]
    env = {e["name"]: e["value"] for e in container["env"]}
    (volume,) = pod["volumes"]
    assert volume["configMap"]["name"] == docs["ConfigMap"]["metadata"]["name"]
    (mount,) = container["volumeMounts"]
    assert mount["name"] == volume["name"]
    template_key = os.path.relpath(env["RAYJOB_TEMPLATE"], mount["mountPath"])
    assert template_key in docs["ConfigMap"]["data"]
    assert "generateName" in yaml.safe_load(docs["ConfigMap"]["data"][template_key])["metadata"]


def test_kubernetes_validation_catches_mistakes():
    cron = copy.deepcopy(cronjob_docs()["CronJob"])
    cron["spec"]["concurrencyPolicyy"] = cron["spec"].pop("concurrencyPolicy")
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(cron, K8S_VERSION, strict=True)


FAKE_KUBECTL = textwrap.dedent(
    """\
    #!/bin/sh
    # kubectl stand-in: `create -f F -o name` prints a RayJob name; `get NAME -o jsonpath=...` walks
    # through $FAKE_STATES (deployment states, one per call) and answers jobStatus with $FAKE_JOB_STATUS.
    echo "$*" >> "$FAKE_LOG"
    case "$1" in
      create) test -s "$3" && echo rayjob.ray.io/birdgen-rebuild-abcde ;;
      get)
        case "$4" in
          *jobDeploymentStatus*)
            n=$(grep -c jobDeploymentStatus "$FAKE_LOG")
            echo "$FAKE_STATES" | cut -d' ' -f"$n" ;;
          *jobStatus*) echo "$FAKE_JOB_STATUS" ;;
          *message*) echo "job failed" ;;
        esac ;;
    esac
    """
)


@pytest.mark.parametrize(
    "states, job_status, expected_code",
    [("Initializing Running Complete", "SUCCEEDED", 0), ("Running Complete", "FAILED", 1), ("Running Failed", "", 1)],
)
def test_cronjob_launcher_waits_for_the_rayjob(tmp_path, states, job_status, expected_code):
    container = cronjob_docs()["CronJob"]["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    kubectl = bin_dir / "kubectl"
    kubectl.write_text(FAKE_KUBECTL)
    kubectl.chmod(0o755)
    template = tmp_path / "rayjob.yaml"
    template.write_text(cronjob_docs()["ConfigMap"]["data"]["rayjob.yaml"])
    log = tmp_path / "kubectl.log"
    env = {
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "RAYJOB_TEMPLATE": str(template),
        "POLL_SECONDS": "0",
        "FAKE_LOG": str(log),
        "FAKE_STATES": states,
        "FAKE_JOB_STATUS": job_status,
    }
    result = subprocess.run(
        [*container["command"], *container["args"]], env=env, capture_output=True, text=True, timeout=30
    )
    assert result.returncode == expected_code, result.stdout + result.stderr
    calls = log.read_text().splitlines()
    assert calls[0] == f"create -f {template} -o name"
    polls = [c for c in calls if "jobDeploymentStatus" in c]
    assert len(polls) == len(states.split()), "polls until the RayJob is Complete or Failed"
    assert all(c.startswith("get rayjob.ray.io/birdgen-rebuild-abcde ") for c in calls[1:])


# --- the RayJob rendered for one run, and the image ---------------------------------------------------


def test_rendered_rayjob_is_named_after_the_run(tmp_path, crds):
    from birdgen_ray.schedule.job_id import submission_id

    plan = tmp_path / "plan.parquet"
    plan.write_bytes(b"stand-in plan bytes: only their hash matters here")
    out = "s3://birds/synthetic/v1/"
    rendered = subprocess.run(
        [sys.executable, str(JOBS / "submit_job.py"), str(plan), "--out", out, "--rayjob", str(JOBS / "rayjob.yaml"),
         "--env", "HF_HUB_ENABLE_HF_TRANSFER=1", "--", "--num-actors", "8"],
        capture_output=True, text=True, check=True, timeout=60,
    )  # fmt: skip
    manifest = yaml.safe_load(rendered.stdout)
    job_id = submission_id(str(plan), out)
    assert manifest["metadata"]["name"] == manifest["spec"]["jobId"] == job_id
    assert rayjob_name_problems(manifest["metadata"]) == []
    assert crd_errors(manifest, crds) == []
    assert kuberay_rayjob_problems(manifest["spec"]) == []
    words = shlex.split(manifest["spec"]["entrypoint"])
    assert words[:3] == ["birdgen-ray", "submit", str(plan)]
    assert words[words.index("--out") + 1] == "s3://birds/synthetic/v1"
    assert words[-2:] == ["--num-actors", "8"]
    env = yaml.safe_load(manifest["spec"]["runtimeEnvYAML"])["env_vars"]
    assert env["HF_HUB_ENABLE_HF_TRANSFER"] == "1" and env["TOKENIZERS_PARALLELISM"] == "false"
    template = yaml.safe_load((JOBS / "rayjob.yaml").read_text())
    assert manifest["spec"]["rayClusterSpec"] == template["spec"]["rayClusterSpec"]


def test_dockerfile_copies_files_that_exist():
    lines = (JOBS / "Dockerfile").read_text().splitlines()
    sources = [w for line in lines if line.startswith("COPY ") for w in line.split()[1:-1] if not w.startswith("--")]
    assert sources
    for source in sources:
        assert (REPO / source).exists(), f"jobs/Dockerfile copies {source}, which is not in the repository"
