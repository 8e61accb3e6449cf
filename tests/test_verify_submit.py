"""submit --verify birdnet on the tiny model: real BirdNET in the real generator actor, real Ray."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from birdgen_ray import open_embeddings, open_index
from birdgen_ray.config import EngineConfig, GenerationConfig, QualityThresholds, RunConfig
from birdgen_ray.io.layout import committed_shard_ids, embeddings_path
from birdgen_ray.io.storage import Output
from birdgen_ray.schedule.runner import submit
from birdgen_ray.verify.species import SpeciesMap, display_label
from tests.plans import plan_table, write_plan
from tests.real_audio import birdnet_or_skip

birdnet_or_skip()


def _plan(n: int) -> pa.Table:
    plan = plan_table(n, labels=("amered", "woothr", "nosuch"), durations=(1.0,))
    names = {"amered": "Setophaga ruticilla", "woothr": "Hylocichla mustelina", "nosuch": "Nonexistens fictus"}
    return plan.append_column("scientific_name", pa.array([names[x] for x in plan["label"].to_pylist()]))


def test_every_tiny_clip_fails_the_species_rule_is_redone_and_ends_fail_species(ray_local, tmp_path):
    run = RunConfig(
        plan_path=write_plan(tmp_path / "plan.parquet", _plan(6)),
        out=str(tmp_path / "out"),
        generation=GenerationConfig(
            model="tiny",
            num_inference_steps=2,
            verifier="birdnet",
            quality=QualityThresholds(min_species_confidence=0.5, max_retries=1),
        ),
        engine=EngineConfig(batch_size=2, verifier_threads=1),
        num_actors=1,
        gpus_per_actor=0,
        shard_size=3,
        progress=False,
    )
    summary = submit(run)
    assert summary["status"] == "complete", summary
    assert summary["unverifiable_classes"] == ["nosuch"]  # the class BirdNET has no label for is named
    assert "CC BY-NC-SA 4.0" in summary["verifier_licence"]

    index = open_index(run.out).to_pylist()
    for row in index:
        assert row["verifier"] == "birdnet-2.4-fp32"
        assert row["species_top1"] and 0.0 <= row["species_top1_confidence"] <= 1.0
        if row["label"] == "nosuch":  # unverifiable: no confidence, no species rejection, no retry
            assert math.isnan(row["species_confidence"]) and row["verdict"] == "pass" and row["attempts"] == 1
        else:  # random weights sound like no bird: rejected, redone once with a derived seed, then kept
            assert row["species_confidence"] < 0.5
            assert row["verdict"] == "fail:species" and row["attempts"] == 2
            assert row["final_seed"] != row["seed"]

    # embeddings are committed with their shard, one per clip, and one call reads them all
    output = Output(run.out)
    for shard_id in committed_shard_ids(output):
        shard_ids = pq.read_table(output.path(f"shards/{shard_id}.parquet"))["clip_id"].to_pylist()
        assert pq.read_table(output.path(embeddings_path(shard_id)))["clip_id"].to_pylist() == shard_ids
    embeddings = open_embeddings(run.out)
    assert embeddings["clip_id"].to_pylist() == sorted(r["clip_id"] for r in index)
    vectors = np.asarray(embeddings["embedding"].to_pylist(), dtype=np.float32)
    assert vectors.shape == (6, 1024) and np.isfinite(vectors).all() and np.abs(vectors).sum(axis=1).min() > 0
    stages = summary["stage_seconds"]
    assert stages["species"] > 0 and "species_wait" in stages

    # the report: pass rates per class and taxon, the confidence distribution, what BirdNET heard instead
    from birdgen_ray.report.build import ReportConfig, build_report
    from birdgen_ray.report.collect import collect

    species = collect(output, per_class=0).species
    assert species.threshold == 0.5 and species.threshold_source == "the run's --min-species-confidence"
    by_class = {g.name: g for g in species.per_class}
    assert (by_class["amered"].clips, by_class["amered"].passed, by_class["nosuch"].verified) == (2, 0, 0)
    assert [(g.name, g.clips, g.passed) for g in species.per_taxon] == [("Aves", 6, 0)]
    assert sorted(species.confidences) == sorted(r["species_confidence"] for r in index if r["label"] != "nosuch")
    # shown as people read them ("Engine" for BirdNET's "Engine_Engine")
    tops = {(r["label"], display_label(r["species_top1"])) for r in index if r["label"] != "nosuch"}
    assert {(label, heard) for label, heard, _ in species.confusions} == tops
    assert sum(n for *_, n in species.confusions) == 4
    page = build_report(run.out, tmp_path / "report", ReportConfig(per_class=1)).read_text()
    assert "Species (BirdNET)" in page and "CC BY-NC-SA 4.0" in page and "Pass rate per taxon" in page
    assert (tmp_path / "report" / "img" / "_species.png").stat().st_size > 1000


def test_rank_by_species_keeps_the_take_birdnet_likes_best():
    from birdgen_ray.generate.species import rank_key
    from birdgen_ray.verify.score import ClipScore

    def take(confidence):
        return ClipScore(confidence, "x", confidence, np.zeros(1024, np.float32), None)

    takes = [(0.9, take(0.1)), (0.2, take(0.7)), (0.5, take(0.7))]
    best_species = max(takes, key=lambda t: rank_key("species", *t))
    best_clap = max(takes, key=lambda t: rank_key("clap", *t))
    assert best_species == takes[2] and best_clap == takes[0]  # species first, CLAP breaks the tie
    unverifiable = [(0.3, take(float("nan"))), (0.6, take(float("nan")))]
    assert max(unverifiable, key=lambda t: rank_key("species", *t)) == unverifiable[1]
    assert SpeciesMap().target("any") is None


def test_drop_species_failures_stores_no_audio_for_them_and_every_reader_skips_them(ray_local, tmp_path):
    import tarfile

    import pytest

    from birdgen_ray.index.dataset import training_rows
    from birdgen_ray.index.reader import read_clip

    run = RunConfig(
        plan_path=write_plan(tmp_path / "plan.parquet", _plan(3)),  # amered, woothr, nosuch (unverifiable)
        out=str(tmp_path / "out"),
        generation=GenerationConfig(
            model="tiny",
            num_inference_steps=2,
            verifier="birdnet",
            drop_species_failures=True,
            quality=QualityThresholds(min_species_confidence=0.5, max_retries=0),
        ),
        engine=EngineConfig(batch_size=3, verifier_threads=1),
        num_actors=1,
        gpus_per_actor=0,
        shard_size=3,
        progress=False,
    )
    assert submit(run)["status"] == "complete"
    rows = {r["label"]: r for r in open_index(run.out).to_pylist()}
    for label in ("amered", "woothr"):
        assert rows[label]["verdict"] == "fail:species" and rows[label]["size"] == 0 and rows[label]["member"] == ""
        with pytest.raises(ValueError, match="has no audio: it failed the species check"):
            read_clip(run.out, rows[label]["clip_id"])
    assert rows["nosuch"]["size"] > 0 and read_clip(run.out, rows["nosuch"]["clip_id"])[0].size > 0
    with tarfile.open(Path(run.out) / rows["nosuch"]["shard"]) as tar:
        assert tar.getnames() == [f"{rows['nosuch']['clip_id']}.wav", f"{rows['nosuch']['clip_id']}.json"]
    assert [r["label"] for r in training_rows(run.out, include_failed=True)] == ["nosuch"]
    assert len(open_embeddings(run.out)) == 3  # the verifier's view of a dropped clip is kept
