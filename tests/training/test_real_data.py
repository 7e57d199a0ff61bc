"""Real data no one here wrote: the KDD Cup 2015 courses through declare -> validate -> features -> train."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import mlflow
import pandas as pd
import pytest

from cli.main import main

SOURCE = Path("/work/shared/data/kddcup2015")
ADAPTER = Path(__file__).resolve().parents[2] / "examples" / "kddcup2015" / "adapter.py"

pytestmark = pytest.mark.skipif(not (SOURCE / "daily_2013.csv.gz").is_file(),
                                reason=f"the KDD Cup 2015 data is not on this machine ({SOURCE})")


@pytest.fixture(scope="module")
def kdd_folder(tmp_path_factory) -> Path:
    spec = importlib.util.spec_from_file_location("kddcup2015_adapter", ADAPTER)
    adapter = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(adapter)
    out = tmp_path_factory.mktemp("kdd") / "data"
    adapter.adapt(SOURCE, out)
    return out


def test_the_adapted_courses_validate_with_their_own_vocabulary(kdd_folder, capsys):
    assert main(["validate", "--data", str(kdd_folder)]) == 0
    out = capsys.readouterr().out
    for own_type in ("access", "video", "problem", "wiki"):
        assert f"  {own_type} " in out


def test_without_the_declaration_validate_names_the_types_and_suggests_it(kdd_folder, tmp_path, capsys):
    bare = tmp_path / "bare"
    bare.mkdir()
    for name in ("patients.parquet", "events.parquet"):
        (bare / name).write_bytes((kdd_folder / name).read_bytes())
    assert main(["validate", "--data", str(bare)]) == 2
    err = capsys.readouterr().err
    assert "'navigate'" in err and '[events.types.video]\nmaps_to = "video"' in err and 'value = "count"' in err


def test_training_on_the_courses_uses_only_supported_features_and_the_external_labels(kdd_folder, tmp_path,
                                                                                     monkeypatch, capsys,
                                                                                     fresh_store):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", fresh_store(tmp_path / "mlflow"))
    assert main(["train", "--data", str(kdd_folder)]) == 0
    out = capsys.readouterr().out
    labels = pd.read_parquet(kdd_folder / "labels.parquet")
    counts = [int(n.replace(",", "")) for n in out.split("snapshots ")[1].splitlines()[0].split(" / ")]
    assert sum(counts) == len(labels)  # one training row per external label
    assert "all missing" in out and "latest_phq9" in out and "best one-feature rule:" in out
    run = mlflow.search_runs(experiment_names=["lapse-dropout"], output_format="list",
                             filter_string="tags.`lapse.kind` = 'training'")[0]  # the parent run
    record = json.loads(Path(mlflow.artifacts.download_artifacts(run_id=run.info.run_id,
                                                                 artifact_path="data_quality.json")).read_text())
    meta = json.loads(Path(mlflow.artifacts.download_artifacts(run_id=run.info.run_id,
                                                               artifact_path="model_meta.json")).read_text())
    assert list(meta["feature_names"]) == record["used"]  # the served model asks only for what it uses
    assert "video_value_7d" in meta["feature_names"] and "latest_phq9" not in meta["feature_names"]
    assert {t["name"] for t in meta["events"]["types"]} >= {"video", "problem"}


def test_the_courses_on_dask_give_the_one_machine_table(kdd_folder, tmp_path, capsys):
    pytest.importorskip("distributed")
    import pyarrow.parquet as pq

    # Their own vocabulary and external labels, in several partitions of whole patients.
    events = pq.ParquetFile(kdd_folder / "events.parquet").metadata.num_rows
    config = tmp_path / "lapse.toml"
    config.write_text((kdd_folder / "lapse.toml").read_text() + f"\n[scale_out]\nevents_per_partition = {events // 3}\n")
    local, dask = tmp_path / "local.parquet", tmp_path / "dask.parquet"
    common = ["features", "--data", str(kdd_folder), "--config", str(config)]
    assert main([*common, "--out", str(local)]) == 0
    assert main([*common, "--out", str(dask), "--engine", "dask", "--workers", "2"]) == 0
    out = capsys.readouterr().out
    assert "(Parquet folder, 3 partitions)" in out or "(Parquet folder, 4 partitions)" in out
    key = ["patient_id", "as_of"]
    expected = pd.read_parquet(local).sort_values(key, ignore_index=True)
    got = pd.read_parquet(dask).sort_values(key, ignore_index=True)
    assert len(got) == len(pd.read_parquet(kdd_folder / "labels.parquet"))
    pd.testing.assert_frame_equal(got, expected, check_exact=True)
