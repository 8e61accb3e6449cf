"""Species verifier benchmark: BirdNET clips/s per core, and what `submit --verify` costs a run.

1. Verifier alone: 5 s clips cut from a real recording (../shared/audio), one LiteRT thread, at each
   batch size (3 s windows per call; a 5 s clip is two windows), after one warm-up call per size.
2. A tiny-model submit of the same plan without and with `--verify birdnet`, in one process and one
   local Ray, alternating (medians of the rounds): wall time, clips/s, the verifier threads' busy time
   (`species`) and the time the generator waited for them (`species_wait`; on a GPU actor, the GPU idling).

    PYTHONPATH=. python bench/verifier_bench.py --json bench/results/verifier-cpu-DATE.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.machine import cpu_model  # noqa: E402
from birdgen_ray.io.audio import read_audio  # noqa: E402
from birdgen_ray.verify.birdnet import BirdNet  # noqa: E402
from birdgen_ray.verify.score import score_clips  # noqa: E402

AUDIO = Path(os.environ.get("BIRDGEN_SHARED_DIR") or REPO.parent / "shared") / "audio"


def verifier_rates(batch_sizes: list[int], clip_s: float, repeats: int) -> list[dict]:
    audio, rate = read_audio(AUDIO / "opensoundscape-1min.wav")
    step = int(clip_s * rate)
    clips = [audio[i : i + step] for i in range(0, len(audio) - step + 1, step)]  # 12 clips of 5 s
    rows = []
    for batch in batch_sizes:
        model = BirdNet(num_threads=1)
        score_clips(model, clips[:2], rate, [None, None], batch)  # allocation at this batch size
        started = time.perf_counter()
        for _ in range(repeats):
            score_clips(model, clips, rate, [None] * len(clips), batch)
        seconds = time.perf_counter() - started
        n = repeats * len(clips)
        rows.append({"batch_windows": batch, "clips": n, "seconds": seconds, "clips_per_s_per_core": n / seconds})
        print(f"batch {batch:>2} windows: {n / seconds:6.2f} clips/s per core ({clip_s:g} s clips)", flush=True)
    return rows


def submit_pair(clips: int, clip_s: float, steps: int, batch: int, rounds: int) -> dict:
    import pyarrow as pa
    import pyarrow.parquet as pq
    import ray

    from birdgen_ray.config import EngineConfig, GenerationConfig, RunConfig
    from birdgen_ray.schedule.runner import submit

    ray.init(num_cpus=3, include_dashboard=False, log_to_driver=False, configure_logging=False)
    folder = Path(tempfile.mkdtemp(prefix="verifier-bench-"))
    plan = pa.table(
        {
            "label": ["amered"] * clips,
            "prompt": [f"a bird song, take {i}" for i in range(clips)],
            "seed": pa.array(range(clips), pa.int64()),
            "duration_s": [clip_s] * clips,
            "scientific_name": ["Setophaga ruticilla"] * clips,
        }
    )
    pq.write_table(plan, folder / "plan.parquet")
    runs: dict[str, list[dict]] = {"without": [], "with": []}
    # alternating, `rounds` times: a shared machine's load drifts, and must not favour one side
    for number, (name, verifier) in enumerate([("without", None), ("with", "birdnet")] * rounds):
        run = RunConfig(
            plan_path=str(folder / "plan.parquet"),
            out=str(folder / f"{name}-{number}"),
            generation=GenerationConfig(model="tiny", num_inference_steps=steps, verifier=verifier),
            engine=EngineConfig(batch_size=batch, verifier_threads=1),
            num_actors=1,
            gpus_per_actor=0,
            shard_size=max(1, clips // 4),
            progress=False,
        )
        summary = submit(run)
        stages = summary["stage_seconds"]
        runs[name].append(
            {
                "wall_s": summary["wall_seconds"],
                "generate_s": summary["generator_seconds"],  # holding the model (the GPU, on a GPU actor)
                "clips_per_s": summary["clips_per_second"],
                "species_s": stages.get("species", 0.0),
                "species_wait_s": stages.get("species_wait", 0.0),
            }
        )
        print(f"submit {name:>7} --verify: {json.dumps(runs[name][-1])}", flush=True)
    ray.shutdown()
    results = {"runs": runs}
    results["without"] = off = {k: float(np.median([r[k] for r in runs["without"]])) for k in runs["without"][0]}
    results["with"] = on = {k: float(np.median([r[k] for r in runs["with"]])) for k in runs["with"][0]}
    added = on["generate_s"] - off["generate_s"]
    results["ratio_wall"] = on["wall_s"] / off["wall_s"]
    results["ratio_generate"] = on["generate_s"] / off["generate_s"]
    # the share of the verifier's time during which the model kept working (it waited only species_wait)
    results["overlap_fraction"] = 1.0 - on["species_wait_s"] / on["species_s"] if on["species_s"] else None
    # the same judged from generator time alone: exact on an idle machine, swamped by noise on a busy one
    results["hidden_by_generate_time"] = 1.0 - added / on["species_s"] if on["species_s"] else None
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch-sizes", default="1,2,4,8")
    parser.add_argument("--clip-s", type=float, default=5.0)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--submit-clips", type=int, default=16)
    parser.add_argument("--submit-clip-s", type=float, default=2.0)
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=2, help="without/with pairs, alternating")
    parser.add_argument("--batch", type=int, default=8, help="tiny-model clips per model call")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    report = {
        "machine": cpu_model(),
        "cores": os.cpu_count(),
        "date": time.strftime("%Y-%m-%d"),
        "verifier": verifier_rates([int(b) for b in args.batch_sizes.split(",")], args.clip_s, args.repeats),
        "submit": submit_pair(args.submit_clips, args.submit_clip_s, args.steps, args.batch, args.rounds),
    }
    print(json.dumps({k: v for k, v in report["submit"].items() if k != "runs"}, indent=2))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
