#!/usr/bin/env python
"""Submit `birdgen-ray submit` to a Ray cluster as a Ray job, once per plan and output.

The submission id is derived from the plan file's hash and the output URI
(birdgen_ray.schedule.job_id), so submitting the same plan into the same output twice is refused by
the Ray job server itself. The job pip-installs nothing: the cluster's image (or setup commands)
already has birdgen-ray, and the runtime_env only sets environment variables (plus an optional
working_dir for trying local code changes).

  # Ray cluster launched with `ray up cluster.yaml`, dashboard tunnelled by `ray dashboard cluster.yaml`
  python jobs/submit_job.py s3://my-bucket/birdgen/plan.parquet --out s3://my-bucket/birdgen/out \\
      --address http://127.0.0.1:8265 -- --gpus-per-actor 1 --num-actors 8 --batch-size 64

  # Resume a failed or stopped job on the same cluster (committed shards are skipped)
  python jobs/submit_job.py ... --attempt 2

  # KubeRay: print jobs/rayjob.yaml with its name, jobId and entrypoint filled in
  python jobs/submit_job.py s3://my-bucket/birdgen/plan.parquet --out s3://my-bucket/birdgen/out \\
      --rayjob jobs/rayjob.yaml | kubectl create -f -

Everything after `--` is passed on to `birdgen-ray submit` unchanged.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys

import yaml

from birdgen_ray.config import DEFAULT_MODEL
from birdgen_ray.fields import parse_env_pairs
from birdgen_ray.schedule.job_id import normalize_out, submission_id

# Set in every job: quiet tokenizers, unbuffered logs so `ray job logs` shows progress as it happens.
DEFAULT_JOB_ENV = {"TOKENIZERS_PARALLELISM": "false", "PYTHONUNBUFFERED": "1"}


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Submit birdgen-ray to a Ray cluster as a Ray job (one job per plan and output).",
        epilog="Arguments after `--` go to `birdgen-ray submit` unchanged.",
    )
    parser.add_argument("plan", help="plan.parquet; a URI the cluster can read (s3://...) on a real cluster")
    parser.add_argument("--out", required=True, help="output folder or URI (s3://bucket/prefix)")
    parser.add_argument("--model", default=DEFAULT_MODEL, help=f"model id or 'tiny' [default: {DEFAULT_MODEL}]")
    parser.add_argument(
        "--address", default=None, help="job server, e.g. http://127.0.0.1:8265 [default: $RAY_ADDRESS]"
    )
    parser.add_argument("--attempt", type=int, default=1, help="2, 3, ... to resume after a failed or stopped job")
    parser.add_argument(
        "--env", action="append", default=[], metavar="NAME=VALUE", help="extra job env var (repeatable)"
    )
    parser.add_argument("--working-dir", default=None, help="ship this folder as the job's working_dir (local code)")
    parser.add_argument("--no-wait", action="store_true", help="return once submitted instead of tailing logs")
    parser.add_argument("--print-id", action="store_true", help="print the submission id and exit")
    parser.add_argument("--dry-run", action="store_true", help="print the `ray job submit` command and exit")
    parser.add_argument(
        "--rayjob", default=None, metavar="TEMPLATE", help="print this RayJob manifest filled in, and exit"
    )
    own, passthrough = (argv[: argv.index("--")], argv[argv.index("--") + 1 :]) if "--" in argv else (argv, [])
    args = parser.parse_args(own)
    args.submit_args = passthrough
    return args


def job_env(pairs: list[str]) -> dict[str, str]:
    try:
        return {**DEFAULT_JOB_ENV, **parse_env_pairs(pairs, "--env")}
    except ValueError as exc:
        raise SystemExit(str(exc)) from None


def entrypoint(plan: str, out: str, model: str, submit_args: list[str]) -> list[str]:
    """The job's command. No --address: inside a Ray job, RAY_ADDRESS makes ray.init() join the cluster."""
    return ["birdgen-ray", "submit", plan, "--out", out, "--model", model, "--no-progress", *submit_args]


def runtime_env(env: dict[str, str], working_dir: str | None) -> dict:
    spec: dict = {"env_vars": env}
    if working_dir:
        spec["working_dir"] = working_dir
    return spec


def ray_job_submit_command(
    address: str | None, job_id: str, runtime: dict, command: list[str], no_wait: bool
) -> list[str]:
    ray = shutil.which("ray") or os.path.join(os.path.dirname(sys.executable), "ray")
    cmd = [ray, "job", "submit", "--submission-id", job_id, "--runtime-env-json", json.dumps(runtime)]
    if address:
        cmd[3:3] = ["--address", address]
    if no_wait:
        cmd.append("--no-wait")
    return [*cmd, "--", *command]


def render_rayjob(template_path: str, job_id: str, command: list[str], runtime: dict) -> str:
    """The RayJob template with this run's name, jobId, entrypoint and env filled in."""
    with open(template_path) as f:
        manifest = yaml.safe_load(f)
    if manifest.get("kind") != "RayJob":
        raise SystemExit(f"{template_path}: expected kind RayJob, got {manifest.get('kind')!r}")
    manifest["metadata"]["name"] = job_id
    spec = manifest["spec"]
    spec["jobId"] = job_id
    spec["entrypoint"] = shlex.join(command)
    template_env = yaml.safe_load(spec.get("runtimeEnvYAML") or "{}") or {}
    template_env.setdefault("env_vars", {}).update(runtime["env_vars"])
    spec["runtimeEnvYAML"] = yaml.safe_dump(template_env, sort_keys=True)
    return yaml.safe_dump(manifest, sort_keys=False)


def final_status(address: str | None, job_id: str) -> str:
    """`ray job submit` exits 0 for a STOPPED job too; only SUCCEEDED counts as done."""
    from ray.job_submission import JobSubmissionClient

    return str(JobSubmissionClient(address).get_job_status(job_id))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    out = normalize_out(args.out)
    plan = args.plan if "://" in args.plan else os.path.abspath(args.plan)
    job_id = submission_id(plan, out, attempt=args.attempt)
    if args.print_id:
        print(job_id)
        return 0
    command = entrypoint(plan, out, args.model, args.submit_args)
    runtime = runtime_env(job_env(args.env), args.working_dir)
    if args.rayjob:
        sys.stdout.write(render_rayjob(args.rayjob, job_id, command, runtime))
        return 0
    address = args.address or os.environ.get("RAY_API_SERVER_ADDRESS") or os.environ.get("RAY_ADDRESS")
    if not address and not args.dry_run:
        raise SystemExit("no job server: pass --address http://HOST:8265 or set RAY_ADDRESS")
    cmd = ray_job_submit_command(address, job_id, runtime, command, args.no_wait)
    if args.dry_run:
        print(shlex.join(cmd))
        return 0
    print(f"submission id: {job_id}", file=sys.stderr, flush=True)
    code = subprocess.run(cmd).returncode
    if code != 0 or args.no_wait:
        if code != 0:
            print(
                f"`ray job submit` failed (exit {code}). If {job_id} already exists on this cluster, it is "
                f"running or finished: see `ray job status {job_id}`; to resume a failed or stopped job, "
                f"submit again with --attempt {args.attempt + 1}.",
                file=sys.stderr,
            )
        return code
    status = final_status(address, job_id)
    if status != "SUCCEEDED":
        print(f"job {job_id} ended {status}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
