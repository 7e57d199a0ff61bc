"""Calendar time everywhere: features, train and score-batch at calendar as-of dates, with the label options."""

from __future__ import annotations

import shutil

import pandas as pd
import pytest

from cli.main import main
from features.validate import load_cohort


@pytest.fixture
def data(tmp_path, sim_data_dir):
    folder = shutil.copytree(sim_data_dir, tmp_path / "data")
    (folder / "lapse.toml").write_text((folder / "lapse.toml").read_text() + "\n[training.xgboost]\nmax_rounds = 30\n")
    return folder


def _dates(data) -> tuple[pd.Timestamp, pd.Timestamp]:
    enrolled = load_cohort(data).patients["enrolled_at"]
    first = (enrolled.min() + pd.Timedelta(days=30)).normalize()
    return first, first + pd.Timedelta(days=28)


def test_features_at_every_n_days_between_two_dates_and_at_one_date(data, tmp_path, capsys):
    first, last = _dates(data)
    out = tmp_path / "f.parquet"
    spec = f"{first:%Y-%m-%d}..{last:%Y-%m-%d}"
    assert main(["features", "--data", str(data), "--out", str(out), "--as-of-dates", spec, "--every-days", "14"]) == 0
    table = pd.read_parquet(out)
    expected = {first + pd.Timedelta(days=d) for d in (0, 14, 28)}
    assert set(table["as_of"]) <= expected and len(set(table["as_of"])) >= 2
    assert (table["as_of"] > table["enrolled_at"]).all() and table["as_of_day"].nunique() > 3

    assert main(["features", "--data", str(data), "--out", str(out), "--as-of-dates", f"{first:%Y-%m-%d}"]) == 0
    one_date = pd.read_parquet(out)
    assert set(one_date["as_of"]) == {first}

    assert main(["features", "--data", str(data), "--out", str(out), "--as-of-dates", f"{first:%Y-%m-%d}",
                 "--eligible-within", "3", "--horizon", "7", "--definition", "inactivity"]) == 0
    narrow = pd.read_parquet(out)
    recorded = narrow.attrs["lapse"]["labels"]
    assert (recorded["engaged_within_days"], recorded["horizon_days"], recorded["definition"]) == (3, 7, "inactivity")
    assert 0 < len(narrow) < len(one_date)  # fewer patients active within 3 days than within 14
    capsys.readouterr()


def test_backwards_dates_are_refused(data, tmp_path, capsys):
    assert main(["features", "--data", str(data), "--out", str(tmp_path / "f.parquet"),
                 "--as-of-dates", "2026-03-01..2026-01-01"]) == 2
    assert "second date is before the first" in capsys.readouterr().err


def test_train_and_score_batch_at_calendar_dates(data, tmp_path, monkeypatch, capsys, fresh_store):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", fresh_store(tmp_path))
    first, last = _dates(data)
    assert main(["train", "--data", str(data), "--as-of-dates", f"{first - pd.Timedelta(days=28):%Y-%m-%d}.."
                 f"{last:%Y-%m-%d}", "--every-days", "2"]) == 0
    out = tmp_path / "scores.parquet"
    assert main(["score-batch", "--data", str(data), "--out", str(out), "--alias", "candidate",
                 "--as-of-dates", f"{first:%Y-%m-%d}..{last:%Y-%m-%d}", "--every-days", "14"]) == 0
    scores = pd.read_parquet(out)
    assert set(scores["as_of"]) == {first + pd.Timedelta(days=d) for d in (0, 14, 28)}
    assert not scores.duplicated(["patient_id", "as_of"]).any()

    pytest.importorskip("distributed")
    on_dask = tmp_path / "dask-scores.parquet"
    assert main(["score-batch", "--data", str(data), "--out", str(on_dask), "--alias", "candidate",
                 "--as-of-dates", f"{first:%Y-%m-%d}..{last:%Y-%m-%d}", "--every-days", "14",
                 "--engine", "dask", "--workers", "2"]) == 0
    key = ["patient_id", "as_of"]
    pd.testing.assert_frame_equal(pd.read_parquet(on_dask).sort_values(key, ignore_index=True),
                                  scores.sort_values(key, ignore_index=True), check_exact=True)
    capsys.readouterr()
