"""The `lapse` command line: every job listed, help on every option, one error handler (exit 2, no traceback)."""

from __future__ import annotations

import subprocess
import sys
from io import StringIO
from pathlib import Path

import pytest
import typer
from rich.console import Console

from cli.main import app, main
from cli.progress import job_steps

JOBS = ["simulate", "validate", "features", "train", "promote", "serve", "build", "report", "score-batch", "monitor",
        "demo", "effect", "outcomes"]


def test_help_lists_every_job(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for job in JOBS:
        assert f"  {job} " in out


def test_every_option_of_every_job_has_help():
    group = typer.main.get_command(app)
    assert sorted(group.commands) == sorted(JOBS)
    for name, command in group.commands.items():
        assert command.help, name
        for param in command.params:
            if param.name != "help":
                assert getattr(param, "help", None), f"lapse {name} {param.opts}"


@pytest.mark.parametrize("entry", [["-m", "cli"], None])
def test_python_dash_m_cli_and_the_console_script_both_run(entry):
    argv = [sys.executable, *entry] if entry else [str(Path(sys.executable).parent / "lapse")]
    done = subprocess.run([*argv, "train", "--help"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "--features FILE" in done.stdout and "--as-of-days" in done.stdout


def test_a_user_error_exits_2_with_its_message_and_no_traceback(tmp_path):
    (tmp_path / "lapse.toml").write_text("[labels]\nhorizon_weeks = 2\n")
    done = subprocess.run([sys.executable, "-m", "cli", "features", "--data", str(tmp_path), "--out",
                           str(tmp_path / "f.parquet")], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert f"lapse features: {tmp_path / 'lapse.toml'}: [labels] horizon_weeks: unknown setting" in done.stderr
    assert "Traceback" not in done.stderr and not (tmp_path / "f.parquet").exists()


def test_bad_arguments_exit_2_naming_the_option(tmp_path, capsys):
    assert main(["features", "--data", str(tmp_path), "--out", str(tmp_path / "f.csv")]) == 2
    assert "--out must name a .parquet file" in capsys.readouterr().err
    assert main(["features", "--data", str(tmp_path), "--out", str(tmp_path / "f.parquet"),
                 "--as-of-days", "3,x"]) == 2
    assert "--as-of-days" in capsys.readouterr().err
    assert main(["train", "--data", str(tmp_path), "--horizon", "0"]) == 2
    assert "--horizon" in capsys.readouterr().err
    assert main(["train"]) == 2 and "--data" in capsys.readouterr().err


def test_progress_names_each_step_on_a_terminal_and_stays_silent_otherwise():
    terminal = StringIO()
    with job_steps("features", ["read", "build"], Console(file=terminal, force_terminal=True, width=100)) as step:
        step("reading the tables")
        step("building features")
    assert "features: building features" in terminal.getvalue()
    piped = StringIO()
    with job_steps("features", ["read"], Console(file=piped, force_terminal=False)) as step:
        step("reading the tables")
    assert piped.getvalue() == ""


def test_validate_checks_the_settings_file_too(tmp_path, capsys):
    (tmp_path / "lapse.toml").write_text("[program]\ncore_modules = 0\n")
    assert main(["validate", "--data", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert f"{tmp_path / 'lapse.toml'}: [program] core_modules: Input should be greater than 0" in err
    assert "no 'patients' table" in err  # and the tables, in the same report
