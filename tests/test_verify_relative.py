"""submit --min-species-confidence 0.5x: each class is judged against a share of its own band ceiling."""

from __future__ import annotations

import pyarrow as pa
import pytest

from birdgen_ray import open_index
from birdgen_ray.config import EngineConfig, GenerationConfig, QualityThresholds, RunConfig
from birdgen_ray.generate.quality import SPECIES, judge
from birdgen_ray.io.storage import Output
from birdgen_ray.schedule.runner import submit
from tests.plans import plan_table, write_plan
from tests.real_audio import birdnet_or_skip

birdnet_or_skip()
NAMES = {"amered": "Setophaga ruticilla", "woothr": "Hylocichla mustelina"}


def _plan(ceilings: dict[str, float] | None) -> pa.Table:
    plan = plan_table(4, labels=tuple(NAMES), durations=(1.0,))
    labels = plan["label"].to_pylist()
    plan = plan.append_column("scientific_name", pa.array([NAMES[x] for x in labels]))
    if ceilings is not None:
        plan = plan.append_column("reference_ceiling", pa.array([ceilings[x] for x in labels], pa.float64()))
    return plan


def _run(tmp_path, plan: pa.Table, share: float) -> RunConfig:
    return RunConfig(
        plan_path=write_plan(tmp_path / "plan.parquet", plan),
        out=str(tmp_path / "out"),
        generation=GenerationConfig(
            model="tiny",
            num_inference_steps=2,
            verifier="birdnet",
            quality=QualityThresholds(min_species_confidence=share, species_confidence_relative=True, max_retries=0),
        ),
        engine=EngineConfig(batch_size=2, verifier_threads=1),
        num_actors=1,
        gpus_per_actor=0,
        shard_size=4,
        progress=False,
    )


def test_the_gate_asks_each_class_for_its_share_of_its_ceiling():
    relative = QualityThresholds(min_species_confidence=0.5, species_confidence_relative=True)
    metrics = {"nonfinite": 0.0, "peak_dbfs": -1.0, "silence_fraction": 0.0, "clipping_fraction": 0.0}
    assert judge({**metrics, "species_confidence": 0.2}, None, relative, species_ceiling=0.3) == []  # 0.2 >= 0.15
    assert judge({**metrics, "species_confidence": 0.2}, None, relative, species_ceiling=0.6) == [SPECIES]
    absolute = QualityThresholds(min_species_confidence=0.5)
    assert judge({**metrics, "species_confidence": 0.2}, None, absolute, species_ceiling=0.3) == [SPECIES]
    assert "species_confidence_relative" not in GenerationConfig().to_json()  # old outputs keep their fingerprint


def test_a_relative_run_judges_by_the_plan_ceiling(ray_local, tmp_path):
    # amered's ceiling is so low that any clip reaches it; woothr's is 1.0: a tiny-model clip never does
    summary = submit(_run(tmp_path, _plan({"amered": 1e-9, "woothr": 1.0}), 1.0))
    assert summary["status"] == "complete", summary
    verdicts = {(r["label"], r["verdict"]) for r in open_index(tmp_path / "out").to_pylist()}
    assert verdicts == {("amered", "pass"), ("woothr", "fail:species")}

    from birdgen_ray.report.collect import collect

    species = collect(Output(str(tmp_path / "out")), per_class=0).species
    by_class = {g.name: g for g in species.per_class}
    assert (by_class["amered"].passed, by_class["woothr"].passed) == (2, 0)  # the report counts as the gate did
    assert species.threshold_source == "the run's --min-species-confidence 1x of each class's ceiling"


def test_a_relative_run_without_ceilings_is_refused_naming_the_classes(tmp_path):
    with pytest.raises(ValueError, match="reference_ceiling.*none for: amered, woothr"):
        submit(_run(tmp_path, _plan(None), 0.5))
