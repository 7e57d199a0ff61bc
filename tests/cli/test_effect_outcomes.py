"""`lapse effect` and `lapse outcomes` end to end: simulated MRTs, other programs' column names, the decision log."""

from __future__ import annotations

import json
from dataclasses import replace

import pandas as pd
import pytest
from mlflow import MlflowClient

from cli.main import main
from outreach.effect import estimate_effect
from outreach.outcomes import read_outcomes
from outreach.settings import PolicySettings
from serving.decision_log import DECISIONS, METADATA, make_engine
from simulation.outreach import OutreachSimConfig, run_program
from simulation.settings import SimulationConfig

MAPPING = {"unit": "user_id", "time": "ts", "action": "sent", "probability": "p", "outcome": "used_7d",
           "tier": "band"}


@pytest.fixture(scope="module")
def mrt() -> pd.DataFrame:
    """A simulated micro-randomized trial's decisions table (simulation/outreach.py)."""
    config = OutreachSimConfig(cohort=replace(SimulationConfig(), n_patients=400, days=42, seed=3))
    policy = PolicySettings(policy="randomized", secret="cli-test-secret", band_low=0.0, probability=0.5)
    return run_program(config, policy).decisions


def test_effect_on_a_simulated_mrt_writes_json_html_and_an_mlflow_run(tmp_path, mrt, capsys, fresh_store):
    mrt.to_parquet(tmp_path / "mrt.parquet")
    uri = fresh_store(tmp_path)
    code = main(["effect", "--table", str(tmp_path / "mrt.parquet"), "--out", str(tmp_path / "out"),
                 "--moderators", "days_since_last_use", "--tracking-uri", uri])
    assert code == 0, capsys.readouterr().err
    saved = json.loads((tmp_path / "out" / "effect.json").read_text())
    expected = estimate_effect(mrt, moderators=("days_since_last_use",))
    assert saved["overall"]["estimate"] == pytest.approx(expected.overall.estimate)
    assert "overall effect" in capsys.readouterr().out
    assert (tmp_path / "out" / "effect.html").exists()
    client = MlflowClient(tracking_uri=uri)
    runs = client.search_runs([client.get_experiment_by_name("lapse-effect").experiment_id])
    assert len(runs) == 1 and runs[0].data.metrics["overall.effect"] == pytest.approx(expected.overall.estimate)


def test_effect_on_another_programs_column_names_with_the_mapping(tmp_path, mrt, capsys, fresh_store):
    mrt.rename(columns=MAPPING).to_csv(tmp_path / "other.csv", index=False)
    args = ["effect", "--table", str(tmp_path / "other.csv"), "--tracking-uri", fresh_store(tmp_path / "mlflow")]
    # Without the mapping, the missing column is named and nothing is written.
    assert main([*args, "--out", str(tmp_path / "unmapped")]) == 2
    assert "missing column 'unit'" in capsys.readouterr().err
    assert not (tmp_path / "unmapped").exists()
    mapping = ",".join(f"{key}={name}" for key, name in MAPPING.items())
    assert main([*args, "--out", str(tmp_path / "out"), "--columns", mapping]) == 0, capsys.readouterr().err
    saved = json.loads((tmp_path / "out" / "effect.json").read_text())
    assert saved["overall"]["estimate"] == pytest.approx(estimate_effect(mrt).overall.estimate)
    assert {t["term"] for t in saved["by_tier"]} <= set(mrt["tier"])


@pytest.mark.parametrize(("extra", "message"), [
    ([], "exactly one of --decisions-db URL and --table FILE"),
    (["--table", "t.csv", "--decisions-db", "sqlite:///x.db"], "exactly one of"),
    (["--table", "t.csv", "--columns", "person=user_id"], "--columns"),
    (["--decisions-db", "sqlite:///x.db", "--columns", "unit=user_id"], "--columns maps the names"),
])
def test_effect_refuses_unclear_sources(tmp_path, capsys, extra, message):
    assert main(["effect", "--out", str(tmp_path / "out"), *extra]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def _log_decisions(db_url: str, mrt: pd.DataFrame) -> list[str]:
    """The MRT's decisions as the service logs them; their decision ids."""
    engine = make_engine(db_url)
    METADATA.create_all(engine)
    rows = [{"decided_at": pd.Timestamp(r.time).isoformat(), "request_id": "r", "endpoint": "triage",
             "patient_id": r.unit, "as_of": pd.Timestamp(r.time).isoformat(), "model_name": "m", "model_version": "1",
             "risk": r.risk, "tier": r.tier, "reasons": "[]", "trigger": bool(r.action), "priority": "soon",
             "policy": "randomized", "policy_version": "v", "propensity": r.probability, "draw": 0.1,
             "action": bool(r.action)} for r in mrt.itertuples()]
    with engine.begin() as connection:
        connection.execute(DECISIONS.insert(), rows)
        ids = [str(i) for (i,) in connection.execute(DECISIONS.select().with_only_columns(DECISIONS.c.id)
                                                     .order_by(DECISIONS.c.id))]
    engine.dispose()
    return ids


def test_outcomes_import_then_effect_from_the_decision_log(tmp_path, mrt, capsys, fresh_store):
    db = f"sqlite:///{tmp_path / 'decisions.db'}"
    ids = _log_decisions(db, mrt)
    came_back = [(i, pd.Timestamp(t) + pd.Timedelta(days=2)) for i, t, y in zip(ids, mrt["time"], mrt["outcome"]) if y]
    outcomes = pd.DataFrame({"outcome_id": [f"o-{i}" for i, _ in came_back], "decision_id": [i for i, _ in came_back],
                             "kind": "re_engaged", "at": [at.isoformat() for _, at in came_back]})
    outcomes.to_csv(tmp_path / "outcomes.csv", index=False)
    assert main(["outcomes", "import", str(tmp_path / "outcomes.csv"), "--decisions-db", db]) == 0
    assert f"{len(outcomes)} stored" in capsys.readouterr().out
    # A retry stores nothing twice.
    assert main(["outcomes", "import", str(tmp_path / "outcomes.csv"), "--decisions-db", db]) == 0
    assert f"0 stored, {len(outcomes)} already stored" in capsys.readouterr().out
    code = main(["effect", "--decisions-db", db, "--out", str(tmp_path / "out"), "--moderators", "risk",
                 "--tracking-uri", fresh_store(tmp_path / "mlflow")])
    assert code == 0, capsys.readouterr().err
    saved = json.loads((tmp_path / "out" / "effect.json").read_text())
    # The same decisions and outcomes, read back from the log: the same estimate as on the MRT table itself.
    expected = estimate_effect(mrt, moderators=("risk",))
    assert saved["overall"]["estimate"] == pytest.approx(expected.overall.estimate)
    assert saved["moderators"][0]["slope"]["estimate"] == pytest.approx(expected.moderators[0].slope.estimate)


def test_effect_from_the_decision_log_with_features_as_moderators(tmp_path, mrt, capsys, fresh_store):
    db = f"sqlite:///{tmp_path / 'decisions.db'}"
    ids = _log_decisions(db, mrt)
    came_back = [(i, pd.Timestamp(t) + pd.Timedelta(days=1)) for i, t, y in zip(ids, mrt["time"], mrt["outcome"]) if y]
    pd.DataFrame({"outcome_id": [f"o-{i}" for i, _ in came_back], "decision_id": [i for i, _ in came_back],
                  "kind": "re_engaged", "at": [at.isoformat() for _, at in came_back]}).to_csv(tmp_path / "o.csv",
                                                                                            index=False)
    assert main(["outcomes", "import", str(tmp_path / "o.csv"), "--decisions-db", db]) == 0
    mrt[["unit", "time", "days_since_last_use"]].rename(columns={"unit": "patient_id", "time": "as_of"}).to_parquet(
        tmp_path / "features.parquet")
    code = main(["effect", "--decisions-db", db, "--features", str(tmp_path / "features.parquet"), "--moderators",
                 "days_since_last_use", "--out", str(tmp_path / "out"),
                 "--tracking-uri", fresh_store(tmp_path / "mlflow")])
    assert code == 0, capsys.readouterr().err
    saved = json.loads((tmp_path / "out" / "effect.json").read_text())
    expected = estimate_effect(mrt, moderators=("days_since_last_use",))
    assert saved["moderators"][0]["slope"]["estimate"] == pytest.approx(expected.moderators[0].slope.estimate)


def test_a_bad_outcome_file_stores_nothing_and_names_the_row_and_field(tmp_path, mrt, capsys):
    db = f"sqlite:///{tmp_path / 'decisions.db'}"
    ids = _log_decisions(db, mrt.head(3))
    good = {"outcome_id": "o-1", "decision_id": ids[0], "kind": "reached", "at": "2026-03-02T10:00:00+00:00"}
    pd.DataFrame([good, {**good, "outcome_id": "o-2", "kind": "phoned"}]).to_csv(tmp_path / "bad.csv", index=False)
    assert main(["outcomes", "import", str(tmp_path / "bad.csv"), "--decisions-db", db]) == 2
    assert "row 2: field 'kind'" in capsys.readouterr().err
    pd.DataFrame([good, {**good, "outcome_id": "o-2", "decision_id": "424242"}]).to_csv(tmp_path / "unknown.csv",
                                                                                      index=False)
    assert main(["outcomes", "import", str(tmp_path / "unknown.csv"), "--decisions-db", db]) == 2
    err = capsys.readouterr().err
    assert "row 2: field 'decision_id': no such decision" in err and "424242" not in err
    assert read_outcomes(db).empty


def test_outcomes_derive_finds_re_engagement_in_new_events_once(tmp_path, sim_data_dir, capsys):
    from features.validate import load_cohort

    events = load_cohort(sim_data_dir).events
    active = events.sort_values("timestamp").groupby("patient_id").head(1).head(20)
    db = f"sqlite:///{tmp_path / 'decisions.db'}"
    engine = make_engine(db)
    METADATA.create_all(engine)
    rows = [{"decided_at": (r.timestamp - pd.Timedelta(hours=1)).isoformat(), "request_id": "r", "endpoint": "score",
             "patient_id": r.patient_id, "as_of": r.timestamp.isoformat(), "model_name": "m", "model_version": "1",
             "risk": 0.5, "tier": "high", "reasons": "[]", "trigger": True, "priority": "soon"}
            for r in active.itertuples()]
    with engine.begin() as connection:
        connection.execute(DECISIONS.insert(), rows)
    engine.dispose()
    assert main(["outcomes", "derive", "--data", str(sim_data_dir), "--decisions-db", db]) == 0
    first = capsys.readouterr().out
    stored = read_outcomes(db)
    assert len(stored) > 0 and set(stored["kind"]) == {"re_engaged"}
    assert f"{len(stored)} stored, 0 already stored" in first
    assert main(["outcomes", "derive", "--data", str(sim_data_dir), "--decisions-db", db]) == 0
    assert f"0 stored, {len(stored)} already stored" in capsys.readouterr().out


def test_serve_refuses_a_randomized_policy_without_its_secret(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("LAPSE_OUTREACH_SECRET", raising=False)
    monkeypatch.setenv("LAPSE_API_KEYS", "a-client-key")
    (tmp_path / "lapse.toml").write_text('[outreach]\npolicy = "randomized"\n')
    assert main(["serve", "--config", str(tmp_path / "lapse.toml")]) == 2
    assert "LAPSE_OUTREACH_SECRET" in capsys.readouterr().err
    # The secret is never a setting of lapse.toml.
    (tmp_path / "lapse.toml").write_text('[outreach]\npolicy = "randomized"\nsecret = "x"\n')
    assert main(["serve", "--config", str(tmp_path / "lapse.toml")]) == 2
    assert "[outreach] secret: unknown setting" in capsys.readouterr().err
