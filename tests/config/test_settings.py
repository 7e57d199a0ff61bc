"""Settings: lapse.toml, the environment and flags, their precedence, and the errors that name file and key."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from config import (ConfigError, FeatureConfig, LabelConfig, ProgramConfig, ServingConfig, TrainingConfig,
                    load_settings)

HORIZON = ("labels", "horizon_days")


def write_toml(folder: Path, text: str, name: str = "lapse.toml") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(text)
    return path


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch):
    """No LAPSE_<TABLE>__<KEY> variable from the machine leaks into these tests."""
    import os

    for name in list(os.environ):
        if name.startswith("LAPSE_") and "__" in name:
            monkeypatch.delenv(name)


def test_defaults_without_file_environment_or_flags(tmp_path):
    settings = load_settings(tmp_path)
    assert settings.labels == LabelConfig() and settings.features == FeatureConfig()
    assert settings.training.registered_model == settings.serving.model_name == "lapse-dropout"
    assert settings.serving.alias == settings.training.champion_alias == "champion"


def test_precedence_defaults_then_file_then_environment_then_flags(tmp_path, monkeypatch):
    write_toml(tmp_path, "[labels]\nhorizon_days = 7\ndefinition = 'inactivity'\n"
                         "[features]\nas_of_days = [3, 7]\n")
    monkeypatch.setenv("LAPSE_LABELS__HORIZON_DAYS", "10")
    monkeypatch.setenv("LAPSE_FEATURES__AS_OF_DAYS", "[7, 14]")

    flagged = load_settings(tmp_path, flags={"--horizon": (HORIZON, 12)})
    assert flagged.labels.horizon_days == 12  # flag over environment
    env = load_settings(tmp_path)
    assert env.labels.horizon_days == 10 and env.features.as_of_days == (7, 14)  # environment over file
    assert env.labels.definition == "inactivity"  # file over default, other keys of the table kept
    assert env.labels.engaged_within_days == LabelConfig().engaged_within_days  # default where nothing is set
    monkeypatch.delenv("LAPSE_LABELS__HORIZON_DAYS")
    assert load_settings(tmp_path).labels.horizon_days == 7  # file over default


def test_config_option_names_the_file_instead_of_the_data_folders(tmp_path):
    write_toml(tmp_path / "data", "[labels]\nhorizon_days = 7\n")
    other = write_toml(tmp_path / "elsewhere", "[labels]\nhorizon_days = 21\n", "team.toml")
    assert load_settings(tmp_path / "data", config_file=other).labels.horizon_days == 21
    with pytest.raises(ConfigError, match="missing.toml: no such settings file"):
        load_settings(tmp_path / "data", config_file=tmp_path / "missing.toml")


def test_unknown_key_is_refused_naming_the_file_table_and_key(tmp_path):
    path = write_toml(tmp_path, "[labels]\nhorizon_days = 7\nhorizon_weeks = 2\n")
    with pytest.raises(ConfigError) as caught:
        load_settings(tmp_path)
    message = str(caught.value)
    assert f"{path}: [labels] horizon_weeks: unknown setting" in message
    assert "horizon_days" in message  # the known keys are listed
    assert message.count("horizon_weeks") == 1  # refused once


def test_unknown_table_and_nested_key_are_refused(tmp_path):
    path = write_toml(tmp_path, "[label]\nhorizon_days = 7\n[training.xgboost]\ndepth = 3\n")
    with pytest.raises(ConfigError) as caught:
        load_settings(tmp_path)
    assert f"{path}: [label]: unknown table" in str(caught.value)
    assert f"{path}: [training.xgboost] depth: unknown setting" in str(caught.value)


def test_unknown_environment_key_names_the_variable(tmp_path, monkeypatch):
    monkeypatch.setenv("LAPSE_LABELS__HORIZON", "7")
    with pytest.raises(ConfigError, match="environment LAPSE_LABELS__HORIZON: unknown setting"):
        load_settings(tmp_path)


def test_bad_values_name_where_they_were_set_and_the_key(tmp_path, monkeypatch):
    path = write_toml(tmp_path, "[labels]\nhorizon_days = 'two weeks'\n[program]\ncore_modules = 0\n")
    with pytest.raises(ConfigError) as caught:
        load_settings(tmp_path)
    assert f"{path}: [labels] horizon_days: Input should be a valid integer" in str(caught.value)
    assert f"{path}: [program] core_modules: Input should be greater than 0" in str(caught.value)

    path.write_text("")
    monkeypatch.setenv("LAPSE_LABELS__DEFINITION", "sometimes")
    with pytest.raises(ConfigError, match="environment LAPSE_LABELS__DEFINITION: definition must be one of inactivity"):
        load_settings(tmp_path)
    monkeypatch.delenv("LAPSE_LABELS__DEFINITION")
    with pytest.raises(ConfigError, match="--horizon: Input should be greater than or equal to 1"):
        load_settings(tmp_path, flags={"--horizon": (HORIZON, 0)})


def test_a_file_that_is_not_toml_is_named_with_its_line(tmp_path):
    path = write_toml(tmp_path, "[labels]\nhorizon_days = \n")
    with pytest.raises(ConfigError, match=rf"{path}: not valid TOML \(.*line 2"):
        load_settings(tmp_path)


def test_program_and_registry_are_set_once_in_their_own_table(tmp_path):
    path = write_toml(tmp_path, "[program]\ncore_modules = 6\n"
                                "[registry]\nregistered_model = 'dropout-b'\nchampion_alias = 'gold'\n")
    settings = load_settings(tmp_path)
    assert settings.features.program == settings.program == ProgramConfig(core_modules=6)
    assert settings.training.registered_model == settings.serving.model_name == "dropout-b"
    assert settings.training.champion_alias == settings.serving.alias == "gold"

    path.write_text("[features]\nprogram = { core_modules = 6 }\n")
    with pytest.raises(ConfigError, match=r"\[features\] program: set these in the \[program\] table"):
        load_settings(tmp_path)


def test_program_json_is_a_deprecated_fallback_and_not_a_second_source(tmp_path):
    (tmp_path / "program.json").write_text(json.dumps({"core_modules": 5}))
    with pytest.warns(FutureWarning, match="program.json is deprecated"):
        assert load_settings(tmp_path).program.core_modules == 5
    write_toml(tmp_path, "[program]\ncore_modules = 6\n")
    with pytest.raises(ConfigError, match="also set in the \\[program\\] table"):
        load_settings(tmp_path)


def test_domains_are_frozen_and_strict():
    labels = LabelConfig(horizon_days=7)
    with pytest.raises(ValidationError):
        labels.horizon_days = 8  # frozen
    with pytest.raises(ValidationError, match="horizon_weeks"):
        LabelConfig(horizon_weeks=2)  # unknown keys refused on direct construction too
    assert labels.model_copy(update={"definition": "inactivity"}) == LabelConfig(horizon_days=7,
                                                                                 definition="inactivity")
    assert TrainingConfig().model_dump()["registry"]["candidate_alias"] == "candidate"
    served = ServingConfig.model_validate_json(ServingConfig(port=3100).model_dump_json())
    assert served.port == 3100 and served.alias == "champion"
    with pytest.raises(ValidationError, match="bogus"):
        ServingConfig.model_validate_json('{"bogus": 1}')  # the handoff to the server refuses unknown keys


def test_settings_built_in_code_do_not_read_the_environment(monkeypatch):
    monkeypatch.setenv("LAPSE_LABELS__HORIZON_DAYS", "3")
    assert LabelConfig().horizon_days == 14  # only load_settings reads the environment


def test_the_example_file_in_the_docs_is_accepted(tmp_path):
    docs = (Path(__file__).resolve().parents[2] / "docs" / "configuration.md").read_text()
    example = docs.split("```toml\n", 1)[1].split("```", 1)[0]
    write_toml(tmp_path, example)
    assert load_settings(tmp_path) == load_settings(tmp_path / "empty")  # the example spells out the defaults


def test_the_clinician_page_and_hardening_tables_reach_the_server_process(tmp_path, monkeypatch):
    """`lapse serve` hands [clinician_page] and [hardening] from lapse.toml to the workers through the environment."""
    from serving.settings import clinician_page_config, clinician_page_env, hardening, hardening_env

    (tmp_path / "lapse.toml").write_text("[clinician_page]\ntoday_capacity = 7\n\n[hardening]\nheader_timeout_s = 4.5\n")
    settings = load_settings(tmp_path)
    for name, value in {**clinician_page_env(settings.clinician_page), **hardening_env(settings.hardening)}.items():
        monkeypatch.setenv(name, value)
    assert clinician_page_config().today_capacity == 7
    assert hardening().header_timeout_s == 4.5
    monkeypatch.setenv("LAPSE_CLINICIAN_PAGE", '{"today_capacty": 7}')
    with pytest.raises(ValidationError, match="today_capacty"):
        clinician_page_config()
