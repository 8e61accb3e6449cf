"""The engine's speed work on the tiny model (CPU): unused scoring is skipped, a shard's texts are encoded up
front, retries are carried into the next batch, and a finished clip's post-processing overlaps later batches.
(The audio itself is pinned bit for bit in test_engine_speed_pins.py.)"""

from __future__ import annotations

import threading

import numpy as np
import pyarrow.parquet as pq
import pytest

from birdgen_ray.config import EngineConfig, GenerationConfig, QualityThresholds, RunConfig
from birdgen_ray.generate.encode import bucket
from birdgen_ray.generate.engine import AudioLDM2Engine
from birdgen_ray.generate.seeds import attempt_seed
from birdgen_ray.plan.validate import validate_plan
from birdgen_ray.rows import PlanRow
from birdgen_ray.schedule.actor import ShardWorker
from birdgen_ray.schedule.shards import make_shards
from tests.plans import plan_table, write_plan

pytestmark = pytest.mark.usefixtures("tiny_cache_and_one_thread")

ROWS = [  # the pinned rows: under a min_peak_dbfs -27 gate, b is rejected twice, d and e once
    PlanRow("a", "wren", "A song of a Eurasian wren", "noise", 7, 1.0),
    PlanRow("b", "frog", "frog", "Low quality", 11, 1.0),
    PlanRow("c", "owl", "an owl hooting at night", "noise", 3, 1.5),
    PlanRow("d", "owl", "a tawny owl", "noise", 5, 1.0),
    PlanRow("e", "wren", "cricket chorus at dusk", "noise", 9, 1.0),
]
LEVEL_GATE = QualityThresholds(max_retries=2, min_peak_dbfs=-27.0)


def make_engine(batch_size=2, quality=None, candidates=1) -> AudioLDM2Engine:
    generation = GenerationConfig(
        model="tiny",
        num_inference_steps=2,
        candidates_per_clip=candidates,
        quality=quality or QualityThresholds(max_retries=0),
    )
    return AudioLDM2Engine(generation, EngineConfig(batch_size=batch_size, device="cpu"))


def record_batches(engine: AudioLDM2Engine) -> list[list[int]]:
    """The seeds of every batch the engine renders (padding included), in order."""
    batches: list[list[int]] = []
    render = engine._render_batch

    def recorded(rows, real_rows, duration):
        batches.append([r.seed for r in rows])
        return render(rows, real_rows, duration)

    engine._render_batch = recorded
    return batches


def count_calls(module) -> list[int]:
    calls = [0]
    module.register_forward_hook(lambda *_: calls.__setitem__(0, calls[0] + 1))
    return calls


def test_rejected_clips_are_carried_into_the_next_batch_not_padded_into_batches_of_their_own():
    engine = make_engine(batch_size=2, quality=LEVEL_GATE)
    batches = record_batches(engine)

    clips = {clip.clip_id: clip for clip in engine.generate(ROWS)}

    retry = attempt_seed
    assert [clips[c].attempts for c in "abcde"] == [1, 3, 1, 2, 2] and all(c.verdict == "pass" for c in clips.values())
    assert batches == [
        [7, 11],  # the 1 s clips' first takes; b is rejected ...
        [5, 9],  # ... and queued behind d and e, which are rejected too
        [retry(11, 1), retry(5, 1)],  # b's first retry shares its batch with d's
        [retry(9, 1), retry(11, 2)],  # e's retry and b's second: 8 takes, 4 full batches
        [3, 3],  # the 1.5 s clip: another shape, padded with its own take
    ]  # retries in rounds of their own would have taken 6 batches: [b1, d1], [e1, pad], [b2, pad]


def test_scoring_is_skipped_when_nothing_uses_it_and_the_audio_is_the_same():
    skipping = make_engine(batch_size=2)  # one take per clip, no CLAP threshold
    scoring = make_engine(batch_size=2, quality=QualityThresholds(max_retries=0, min_clap_score=-1.0))  # all pass
    assert not skipping.scores_takes and scoring.scores_takes
    skipped_calls = count_calls(skipping.pipe.text_encoder.audio_projection)
    scored_calls = count_calls(scoring.pipe.text_encoder.audio_projection)

    skipped, scored = skipping.generate(ROWS), scoring.generate(ROWS)

    assert skipped_calls[0] == 0 and scored_calls[0] == 3  # CLAP's audio tower: never, or once per batch
    for without, with_score in zip(skipped, scored):
        np.testing.assert_array_equal(without.audio, with_score.audio)
        assert (without.final_seed, without.attempts, without.verdict) == (with_score.final_seed, 1, "pass")
        assert without.metrics["clap_score"] is None and -1.0 <= with_score.metrics["clap_score"] <= 1.0
        assert {k: v for k, v in without.metrics.items() if k != "clap_score"} == {
            k: v for k, v in with_score.metrics.items() if k != "clap_score"
        }
    assert make_engine(candidates=2).scores_takes  # candidates are ranked by their score


def test_the_index_holds_null_for_an_unscored_clip(tmp_path):
    plan_path = write_plan(tmp_path / "plan.parquet", plan_table(3, durations=(1.0,)))
    shard = make_shards(validate_plan(pq.read_table(plan_path)), 3)[0]
    run = RunConfig(
        plan_path=plan_path,
        out=str(tmp_path / "out"),
        generation=GenerationConfig(model="tiny", num_inference_steps=2),
        engine=EngineConfig(batch_size=4, device="cpu"),
    )
    ShardWorker(run, cpu_threads=1).run_shard(shard)
    index = pq.read_table(tmp_path / "out" / "shards" / f"{shard.shard_id}.parquet")
    assert index["clap_score"].null_count == 3  # null, not NaN: no score was computed
    assert index["peak_dbfs"].null_count == 0


def test_a_shards_texts_are_encoded_once_up_front_in_length_buckets():
    engine = make_engine(batch_size=1)
    t5_calls = count_calls(engine.pipe.text_encoder_2)
    rows = [
        PlanRow(f"r{i}", "x", f"a {word} calls", "noise", i, 0.5)
        for i, word in enumerate(["wren", "owl", "crow", "frog"])
    ]
    texts = list(dict.fromkeys(t for r in rows for t in (r.prompt, r.negative_prompt)))
    lengths = {(len(engine.pipe.tokenizer(t).input_ids), len(engine.pipe.tokenizer_2(t).input_ids)) for t in texts}
    buckets = {(bucket(c, 512), bucket(t, 512)) for c, t in lengths}
    assert len(buckets) < len(lengths)  # texts of different lengths share a bucket: one call for them

    engine.generate(rows)

    assert t5_calls[0] == len(buckets)  # one Flan-T5 call per length bucket, none per batch
    assert engine.engine_counts["encoder_calls"] == len(buckets)
    assert set(engine.encoder._cache) == set(texts)


def test_a_finished_clips_post_processing_runs_while_later_batches_render():
    engine = make_engine(batch_size=1)
    started = threading.Event()
    postprocess, render = engine._postprocess, engine._render_batch
    overlapped = []

    def postprocess_signals(raw, duration):
        started.set()
        return postprocess(raw, duration)

    def last_batch_waits_for_it(rows, real_rows, duration):
        if [r.seed for r in rows] == [ROWS[-1].seed]:  # the last 1 s clip: the pool must already be working
            overlapped.append(started.wait(timeout=10))
        return render(rows, real_rows, duration)

    engine._postprocess, engine._render_batch = postprocess_signals, last_batch_waits_for_it
    clips = engine.generate(ROWS)

    assert overlapped == [True]
    assert [c.clip_id for c in clips] == [r.clip_id for r in ROWS] and all(np.isfinite(c.audio).all() for c in clips)
