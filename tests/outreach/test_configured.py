"""The [outreach] table turned into PolicySettings: the version recorded on decisions, the environment, errors."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from config import OutreachConfig, load_settings
from outreach.configured import SECRET_ENV, policy_settings
from outreach.errors import OutreachError
from outreach.policy import Candidate, decide
from outreach.settings import PolicySettings

RANDOMIZED = dict(policy="randomized", secret="k", band_low=0.3, band_high=0.9, probability=0.65,
                  probability_min=0.25, probability_max=0.75, capacity_per_day=20, capacity_per_coach=6,
                  risk_threshold=0.35)


@pytest.fixture(autouse=True)
def _no_outreach_env(monkeypatch):
    for name in ("LAPSE_OUTREACH_SECRET", "LAPSE_OUTREACH_POLICY", "LAPSE_OUTREACH_CAPACITY_PER_DAY",
                 "LAPSE_OUTREACH__POLICY", "LAPSE_OUTREACH__CAPACITY_PER_DAY"):
        monkeypatch.delenv(name, raising=False)


def test_policy_version_is_the_one_recorded_before(monkeypatch):
    """Every decision records policy_version, so logs are compared by it. The expected strings were printed
    by the code before PolicySettings was built from config.outreach.TriggerPolicy (commit 5e60bc1, with no
    LAPSE_ variable set): the same settings must keep giving the same version."""
    assert PolicySettings().policy_version == "risk-76ed27d501"
    assert PolicySettings(**RANDOMIZED).policy_version == "randomized-f64360be52"
    # The secret is not part of the version.
    assert PolicySettings(**{**RANDOMIZED, "secret": "other"}).policy_version == "randomized-f64360be52"
    # Through the table, as the service builds it (risk threshold from the model, /triage's overrides).
    assert policy_settings(OutreachConfig(), 0.42).policy_version == "risk-d094a89c10"
    table = OutreachConfig(policy="randomized", band_low=0.0, capacity_per_coach=4)
    monkeypatch.setenv(SECRET_ENV, "s3")
    assert policy_settings(table, 0.42).policy_version == "randomized-259d32284c"
    assert policy_settings(table, 0.42, policy="risk", capacity_per_day=7,
                           risk_threshold=0.0).policy_version == "risk-f3abcf0fd3"
    # A version of the team's own is recorded as given.
    assert policy_settings(table.model_copy(update={"version": "mrt-2026"}), 0.42).policy_version == "mrt-2026"


def test_a_changed_copy_records_its_own_version():
    """Today's queue copies the policy with the team's capacity: the copy's version is that of its settings."""
    settings = PolicySettings(risk_threshold=0.5)
    before = settings.policy_version
    copy = settings.model_copy(update={"capacity_per_day": 3})
    assert copy.capacity_per_day == 3
    assert copy.policy_version == PolicySettings(risk_threshold=0.5, capacity_per_day=3).policy_version != before
    with pytest.raises(ValueError, match="secret"):
        settings.model_copy(update={"policy": "randomized"})


def test_single_underscore_environment_does_not_change_the_policy(monkeypatch):
    """LAPSE_OUTREACH_<KEY> (one underscore) was read by PolicySettings itself; now only [outreach] and
    LAPSE_OUTREACH__<KEY> set the policy, and the single-underscore form changes nothing."""
    monkeypatch.setenv("LAPSE_OUTREACH_POLICY", "randomized")
    monkeypatch.setenv("LAPSE_OUTREACH_CAPACITY_PER_DAY", "3")
    monkeypatch.setenv(SECRET_ENV, "s")
    table = load_settings().outreach
    assert (table.policy, table.capacity_per_day) == ("risk", None)
    built = policy_settings(table, 0.5)
    assert (built.policy, built.capacity_per_day) == ("risk", None)
    assert built.policy_version == policy_settings(OutreachConfig(), 0.5).policy_version
    direct = PolicySettings()
    assert (direct.policy, direct.capacity_per_day, direct.secret.get_secret_value()) == ("risk", None, "")


def test_double_underscore_environment_and_the_secret_turn_on_randomization(monkeypatch):
    monkeypatch.setenv("LAPSE_OUTREACH__POLICY", "randomized")
    table = load_settings().outreach
    assert table.policy == "randomized"
    with pytest.raises(OutreachError, match=SECRET_ENV):
        policy_settings(table, 0.5)
    monkeypatch.setenv(SECRET_ENV, "s")
    settings = policy_settings(table, 0.5)
    assert settings.policy == "randomized" and settings.policy_version.startswith("randomized-")
    moment = datetime(2026, 3, 2, 8, 0, tzinfo=timezone.utc)
    decided = decide([Candidate(f"P{i}", moment, 0.6) for i in range(20)], settings)
    assert {d.propensity for d in decided} == {0.5}
    assert {d.action for d in decided} == {True, False}


def test_errors_name_the_setting_and_the_rule_never_the_secret(monkeypatch):
    monkeypatch.setenv(SECRET_ENV, "do-not-print-me")
    table = OutreachConfig(policy="randomized")
    with pytest.raises(OutreachError) as incoherent:
        policy_settings(table, 0.5, band_low=0.9, band_high=0.3)
    assert str(incoherent.value) == "[outreach] band_low must not exceed band_high"
    with pytest.raises(OutreachError) as out_of_range:
        policy_settings(table, 0.5, probability=1.5)
    assert str(out_of_range.value) == "[outreach] probability: Input should be less than 1"
    assert out_of_range.value.field == "probability"
    assert "do-not-print-me" not in str(incoherent.value) + str(out_of_range.value)
