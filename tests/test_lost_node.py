"""A node lost while its actor loads the model: the run goes on and finishes on the other node.

Two real Ray nodes on 127.0.0.1, each a `ray start --block` of its own (non-default ports, token
auth from conftest.py), one CPU each: the driver (a `birdgen-ray submit` subprocess joined to
them) gets one actor per node. The second node's raylet runs with a slow null "model load"
(BIRDGEN_NULL_LOAD_S in its environment, which its workers inherit); it is SIGKILLed while its
actor is still loading its model (ShardWorker.load). That death is a lost node, not a generator
that cannot start: the run must not end with "the generator actors could not start", and every clip lands once.

Only the processes started here are stopped, by pid (`ray stop` would stop every Ray on the box).
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
import pyarrow.parquet as pq
import pytest

from tests import fault_hooks
from tests.fault_hooks import LOAD_SLEEP_ENV, SLEEP_ENV
from tests.plans import plan_table, write_plan

pytestmark = pytest.mark.slow  # a second Ray node

REPO = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent
CLI = [sys.executable, "-c", "from birdgen_ray.cli import app; app()"]
NODE_START_TIMEOUT_S = 60
CLIPS = 24
SLEEP_S = 0.5  # per clip: 12 s of work for the surviving actor, longer than the lost node takes to be noticed
# The GCS declares a node dead after this many missed health checks (Ray's default takes ~15 s).
FAST_HEALTH_CHECKS = {"RAY_health_check_period_ms": "500", "RAY_health_check_failure_threshold": "4"}


def _free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _free_range(size: int) -> tuple[int, int]:
    """A run of ports below the ephemeral range that nobody listens on now (for one node's workers)."""
    for _ in range(200):
        low = random.randrange(20_000, 30_000 - size)
        if all(_free(p) for p in range(low, low + size)):
            return low, low + size - 1
    raise RuntimeError("no free range of worker ports")


def _env(**extra: str) -> dict[str, str]:
    """The session's token auth (conftest.py), this worktree's code, this venv's tools first."""
    return {
        **os.environ,
        "PYTHONPATH": fault_hooks.PYTHONPATH,
        "RAY_USAGE_STATS_ENABLED": "0",
        "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        **extra,
    }


def _node_ports() -> list[str]:
    low, high = _free_range(40)
    return [
        f"--node-manager-port={_free_port()}",
        f"--object-manager-port={_free_port()}",
        f"--metrics-export-port={_free_port()}",
        f"--runtime-env-agent-port={_free_port()}",
        f"--dashboard-agent-grpc-port={_free_port()}",
        f"--dashboard-agent-listen-port={_free_port()}",
        f"--min-worker-port={low}",
        f"--max-worker-port={high}",
    ]


def _start(command: list[str], log_path: Path, env: dict[str, str]) -> subprocess.Popen:
    with open(log_path, "w") as log:
        return subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def _wait_started(node: subprocess.Popen, log_path: Path) -> None:
    deadline = time.monotonic() + NODE_START_TIMEOUT_S
    while "Ray runtime started" not in log_path.read_text():
        if node.poll() is not None or time.monotonic() > deadline:
            pytest.fail(f"ray start did not come up (exit {node.poll()}):\n{log_path.read_text()[-3000:]}")
        time.sleep(0.2)


def _tree(proc: subprocess.Popen) -> set[psutil.Process]:
    try:
        root = psutil.Process(proc.pid)
        return {root, *root.children(recursive=True)}
    except psutil.NoSuchProcess:
        return set()


def _stop(processes: set[psutil.Process]) -> list[psutil.Process]:
    """SIGTERM, then SIGKILL, exactly the processes started here (psutil checks a pid was not reused)."""
    for proc in processes:
        try:
            proc.send_signal(signal.SIGTERM)
        except psutil.Error:
            pass
    _, alive = psutil.wait_procs(list(processes), timeout=15)
    for proc in alive:
        try:
            proc.kill()
        except psutil.Error:
            pass
    return psutil.wait_procs(alive, timeout=10)[1]


def test_a_node_lost_while_its_actor_loads_the_model_does_not_end_the_run(tmp_path):
    temp_dir = tempfile.mkdtemp(prefix="bgr-", dir="/tmp")  # short: Ray's unix sockets live under it
    port = _free_port()
    address = f"127.0.0.1:{port}"
    head_log, lost_log = Path(temp_dir) / "head.log", Path(temp_dir) / "lost.log"
    common = ["--block", "--node-ip-address=127.0.0.1", "--num-gpus=0", "--disable-usage-stats"]
    head_cmd = [
        str(VENV_BIN / "ray"), "start", "--head", *common, f"--port={port}", f"--temp-dir={temp_dir}",
        "--include-dashboard=false", f"--dashboard-port={_free_port()}", f"--ray-client-server-port={_free_port()}",
        "--num-cpus=1", '--resources={"head": 1}', *_node_ports(),
    ]  # fmt: skip
    lost_cmd = [
        str(VENV_BIN / "ray"), "start", f"--address={address}", *common,
        "--num-cpus=1", '--resources={"lost": 1}', *_node_ports(),
    ]  # fmt: skip
    started: set[psutil.Process] = set()
    driver = None
    try:
        head = _start(head_cmd, head_log, _env(**FAST_HEALTH_CHECKS))
        started |= _tree(head)
        _wait_started(head, head_log)
        started |= _tree(head)
        lost = _start(lost_cmd, lost_log, _env(**{LOAD_SLEEP_ENV: "600"}))
        started |= _tree(lost)
        _wait_started(lost, lost_log)
        started |= _tree(lost)

        plan = write_plan(tmp_path / "plan.parquet", plan_table(CLIPS))
        out = tmp_path / "out"
        driver = subprocess.Popen(
            [*CLI, "submit", plan, "--out", str(out), "--generator", "null", "--gpus-per-actor", "0",
             "--num-actors", "2", "--shard-size", "4", "--no-progress", "--address", address,
             "--actor-env", f"{SLEEP_ENV}={SLEEP_S}"],
            env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        started |= _tree(driver)

        # 1. the lost node's actor is loading its model (the slow load): its raylet goes away
        deadline = time.monotonic() + NODE_START_TIMEOUT_S
        loading: list[psutil.Process] = []
        while not loading:
            assert driver.poll() is None, driver.communicate()
            assert time.monotonic() < deadline, "no actor started loading on the second node"
            tree = _tree(lost)
            started |= tree
            loading = [p for p in tree if "ShardWorker" in " ".join(_cmdline(p))]
            time.sleep(0.2)
        raylets = [p for p in _tree(lost) if p.name() == "raylet"]
        assert raylets, "the second node has no raylet"
        started |= _tree(lost)
        for raylet in raylets:
            raylet.kill()

        # 2. the run finishes on the head node alone
        stdout, stderr = driver.communicate(timeout=150)
        assert driver.returncode == 0, stderr[-3000:]
        assert "could not start" not in stderr and "ActorStartFailed" not in stderr, stderr[-3000:]
        assert "failed to start" in stderr or "died" in stderr, stderr[-3000:]  # the loss was seen and survived
        ids = pq.read_table(out / "index.parquet", columns=["clip_id"])["clip_id"].to_pylist()
        assert len(ids) == len(set(ids)) == CLIPS
        summary = json.loads((out / "summary.json").read_text())
        assert summary["status"] == "complete" and summary["generated_this_run"] == CLIPS
    finally:
        if driver is not None and driver.poll() is None:
            driver.kill()
            driver.communicate(timeout=30)
        for node in ("lost", "head"):
            proc = locals().get(node)
            if proc is not None:
                started |= _tree(proc)
        left = _stop(started)
        shutil.rmtree(temp_dir, ignore_errors=True)
        assert not left, f"Ray processes still running after teardown: {[p.pid for p in left]}"


def _cmdline(proc: psutil.Process) -> list[str]:
    try:
        return proc.cmdline()
    except psutil.Error:
        return []
