"""Outputs know the versions that made them: recorded per clip and per run, and a resume under other
versions is refused in one line unless --allow-version-change, which the run history records."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from birdgen_ray import open_index
from birdgen_ray.cli import app
from birdgen_ray.config import TINY_MODEL_VERSION, TINY_STABLE_AUDIO_MODEL_VERSION
from birdgen_ray.generate.revision import model_revision
from birdgen_ray.io.layout import RUN_FILE
from birdgen_ray.schedule.resume import VersionMismatch
from birdgen_ray.schedule.runner import submit
from birdgen_ray.versions import AUDIO_PACKAGES, audio_versions, package_version, version_changes
from tests.plans import plan_table, write_plan
from tests.test_submit import null_run


def _pretend_made_with(out, **versions) -> None:
    """Rewrite the output's recorded versions, as if its clips had been made under those."""
    run_file = out / RUN_FILE
    record = json.loads(run_file.read_text())
    record["versions"].update(versions)
    run_file.write_text(json.dumps(record))


def test_each_clip_and_the_summary_record_the_versions_that_decided_the_audio(ray_local, tmp_path):
    path = write_plan(tmp_path / "plan.parquet", plan_table(3))
    summary = submit(null_run(path, tmp_path / "out"))
    expected = audio_versions(model_revision("cvssp/audioldm2"))
    assert {k: summary["versions"][k] for k in expected} == expected
    assert set(AUDIO_PACKAGES) <= set(summary["versions"]) and summary["versions"]["transformers"][0].isdigit()
    rows = open_index(tmp_path / "out")["versions"].to_pylist()
    assert [json.loads(r) for r in rows] == [expected] * 3


def test_a_resume_under_another_transformers_is_refused_naming_both_versions(ray_local, tmp_path):
    path = write_plan(tmp_path / "plan.parquet", plan_table(4))
    out = tmp_path / "out"
    submit(null_run(path, out))
    installed = package_version("transformers")
    _pretend_made_with(out, transformers="5.0.0")
    grown = write_plan(tmp_path / "grown.parquet", plan_table(6))
    with pytest.raises(VersionMismatch, match=rf"transformers 5\.0\.0 -> {installed}.*--allow-version-change"):
        submit(null_run(grown, out))
    assert len(open_index(out)) == 4  # nothing was added

    result = CliRunner().invoke(
        app, ["submit", str(grown), "--out", str(out), "--generator", "null", "--no-progress", "--num-actors", "1"]
    )
    assert result.exit_code == 2
    assert f"transformers 5.0.0 -> {installed}" in result.output and len(result.output.strip().splitlines()) == 1


def test_allow_version_change_resumes_and_the_history_records_it(ray_local, tmp_path):
    path = write_plan(tmp_path / "plan.parquet", plan_table(4))
    out = tmp_path / "out"
    submit(null_run(path, out))
    _pretend_made_with(out, numpy="1.26.4")
    summary = submit(null_run(write_plan(tmp_path / "grown.parquet", plan_table(6)), out, allow_version_change=True))
    assert summary["done"] == 6 and summary["generated_this_run"] == 2
    change = summary["history"][-1]["allowed_version_change"]
    assert change["changes"] == {"numpy": {"recorded": "1.26.4", "installed": package_version("numpy")}}
    assert "allowed_version_change" not in summary["history"][0]
    # the output now records the installed versions: the same command resumes without the flag
    assert submit(null_run(write_plan(tmp_path / "more.parquet", plan_table(7)), out))["done"] == 7


def test_an_unresolvable_revision_or_an_untracked_package_is_no_evidence_of_a_change():
    recorded = {"torch": "2.13.0", "model_revision": "unknown"}
    assert version_changes(recorded, {"torch": "2.13.0", "model_revision": "hub:abc", "numpy": "2.4.6"}) == {}
    assert version_changes({"model_revision": "hub:abc"}, {"model_revision": "hub:def"}) == {
        "model_revision": ("hub:abc", "hub:def")
    }


def test_a_local_snapshot_revision_changes_with_its_config(tmp_path):
    (tmp_path / "model_index.json").write_text('{"_class_name": "AudioLDM2Pipeline"}')
    (tmp_path / "unet").mkdir()
    (tmp_path / "unet" / "config.json").write_text('{"in_channels": 8}')
    before = model_revision(str(tmp_path))
    assert before == model_revision(str(tmp_path)) and before.startswith("sha256:")
    (tmp_path / "unet" / "config.json").write_text('{"in_channels": 16}')
    assert model_revision(str(tmp_path)) != before
    assert model_revision("tiny") == f"tiny-{TINY_MODEL_VERSION}"
    assert model_revision("tiny-stable-audio") == f"tiny-stable-audio-{TINY_STABLE_AUDIO_MODEL_VERSION}"
