"""`lapse monitor` on a real MLflow store: drift of a data folder against the training reference, realized
performance of a real decision log, and the alarm when the data feed changes."""

from __future__ import annotations

import shutil
from datetime import timedelta

import pandas as pd
import pytest

from cli.main import main


@pytest.fixture(scope="module")
def store(tmp_path_factory, private_store):
    """The session's champion in a tracking store of this module's own."""
    root = tmp_path_factory.mktemp("monitor")
    return private_store(root), root


@pytest.fixture(autouse=True)
def _tracking(store, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store[0])


def _decision_log(store, sim_data_dir) -> str:
    """A decision log holding the served model's scores of the patients active 30 days before the data's end."""
    from engines.scoring import load_served_model, score_cohort
    from features.io import read_data_end
    from features.validate import load_cohort
    from serving.decision_log import Decision, DecisionLog

    uri, root = store
    model = load_served_model(uri)
    cohort = load_cohort(sim_data_dir)
    as_of = read_data_end(sim_data_dir, cohort.events) - timedelta(days=30)
    scores = score_cohort(cohort.patients, cohort.events, as_of, model)
    url = f"sqlite:///{root / 'decisions.db'}"
    log = DecisionLog(url)
    log.write([Decision("req-1", "score", r.patient_id, r.as_of.to_pydatetime(), r.model_name, r.model_version,
                        r.risk, r.tier, (), bool(r.trigger), r.priority) for r in scores.itertuples()])
    log.close()
    return url


def test_monitor_prints_psi_per_feature_and_realized_auc(store, sim_data_dir, capsys):
    url = _decision_log(store, sim_data_dir)
    assert main(["monitor", "--data", str(sim_data_dir), "--decisions", url]) == 0
    out = capsys.readouterr().out
    assert "PSI: below 0.1 ok, 0.1 watch, 0.25 alarm" in out
    assert "sessions_total" in out
    # The same data feed as training: no feature is at alarm level.
    assert "): alarm" not in out and " alarm " not in out
    realized = next(line for line in out.splitlines() if "realized AUC" in line)
    auc = float(realized.split("realized AUC ")[1].split(";")[0])
    assert 0.5 < auc <= 1.0
    assert "expected calibration error" in realized


def test_a_changed_data_feed_raises_the_alarm(store, sim_data_dir, tmp_path, capsys):
    changed = tmp_path / "changed"
    shutil.copytree(sim_data_dir, changed)
    events_file = next(changed.glob("events.*"))
    events = pd.read_parquet(events_file) if events_file.suffix == ".parquet" else pd.read_csv(events_file)
    # The feed stops sending session events: the session features move far from training.
    events = events[events["event_type"] != "session"]
    if events_file.suffix == ".parquet":
        events.to_parquet(events_file, index=False)
    else:
        events.to_csv(events_file, index=False)
    assert main(["monitor", "--data", str(changed), "--fail-on-alarm"]) == 1
    out = capsys.readouterr().out
    assert "): alarm" in out
    first = next(line for line in out.splitlines() if line.strip().startswith(("sessions", "days_since")))
    assert "alarm" in first


def test_monitor_without_data_or_decisions_says_what_to_give(store, capsys):
    assert main(["monitor"]) == 2
    assert "give --data DIR" in capsys.readouterr().err


def test_decisions_about_patients_the_model_was_not_fit_to_score_are_left_out(store, sim_data_dir, capsys):
    from dataclasses import replace

    from serving.decision_log import DecisionLog, read_decisions

    url = _decision_log(store, sim_data_dir)
    main(["monitor", "--decisions", url])
    before = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("decision log:"))
    logged = read_decisions(url)
    log = DecisionLog(url)
    # The same patients again, now said to be outside what the model was trained on (a risk not to judge it by).
    log.write([replace(d, status="not_eligible", risk=1.0 - d.risk) for d in _as_decisions(logged[:50])])
    log.close()
    main(["monitor", "--decisions", url])
    after = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("decision log:"))
    assert after.startswith(before.split(" (")[0])  # the same count of decisions as before
    assert "(50 about patients the model was not fit to score left out)" in after


def _as_decisions(rows):
    from datetime import datetime

    from serving.decision_log import Decision

    return [Decision(r["request_id"], r["endpoint"], r["patient_id"], datetime.fromisoformat(r["as_of"]),
                     r["model_name"], r["model_version"], r["risk"], r["tier"],
                     tuple(r["reasons"]), bool(r["trigger"]), r["priority"]) for r in rows]
