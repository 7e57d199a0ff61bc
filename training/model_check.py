"""Prove a logged model is self-contained: `mlflow models predict` on its input example in a fresh venv.

The venv is made by uv from the model's own requirements.txt only (no lapse, no project on the path),
and `mlflow models predict --env-manager local` runs from inside it. With uv's cache warm this takes
seconds. Run it with `make check-model` (the candidate) or
`python -m training.model_check models:/lapse-dropout/3`.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import mlflow.artifacts

from config import DEFAULT_PATHS, TrainingConfig
from training.tracking import connect, tracking_uri

_UV_FALLBACK = Path.home() / ".local" / "bin" / "uv"


class ModelCheckError(RuntimeError):
    """The model did not install or predict in a fresh environment; the message says at which step."""


@dataclass(frozen=True)
class ModelCheck:
    """A passed check: the model, how many requirements it installed, and the columns it predicted."""

    model_uri: str
    requirements: list[str]
    output_columns: list[str]
    rows: int


def find_uv() -> str:
    """The uv executable (PATH, else ~/.local/bin/uv)."""
    found = shutil.which("uv") or (str(_UV_FALLBACK) if _UV_FALLBACK.is_file() else None)
    if found is None:
        raise ModelCheckError("uv is not installed: the check builds the fresh environment with uv")
    return found


def _run(step: str, args: list[str], cwd: Path, env: dict[str, str], timeout: float) -> str:
    done = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        raise ModelCheckError(f"{step} failed (exit {done.returncode}):\n{done.stderr[-3000:]}")
    return done.stdout


def check_model(model_uri: str, tracking: str | None = None, timeout: float = 600.0) -> ModelCheck:
    """Download `model_uri`, install its requirements in a new venv and predict its input example there."""
    with tempfile.TemporaryDirectory(prefix="lapse-model-check-") as tmp:
        work = Path(tmp)
        os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
        if tracking is not None:
            connect(tracking)
        model_dir = Path(mlflow.artifacts.download_artifacts(
            artifact_uri=model_uri, dst_path=str(work / "model"), tracking_uri=tracking, registry_uri=tracking))
        requirements = model_dir / "requirements.txt"
        example = model_dir / "serving_input_example.json"
        for needed in (requirements, example):
            if not needed.is_file():
                raise ModelCheckError(f"{model_uri}: the logged model has no {needed.name}")
        venv = work / "venv"
        bin_dir = venv / "bin"
        # Nothing of this project may leak in: no PYTHONPATH, no virtualenv, the scratch folder as cwd.
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "MLFLOW_TRACKING_URI")}
        env.update(PATH=f"{bin_dir}{os.pathsep}{env.get('PATH', '')}", VIRTUAL_ENV=str(venv),
                   MLFLOW_TRACKING_URI=f"sqlite:///{work / 'scratch.db'}")
        uv = find_uv()
        # This interpreter (the model was logged with its version), never a Python downloaded by uv.
        _run("uv venv", [uv, "venv", "--quiet", "--no-python-downloads", "--python", sys.executable, str(venv)],
             work, env, timeout)
        _run("installing the model's requirements", [uv, "pip", "install", "--quiet", "--python",
                                                     str(bin_dir / "python"), "-r", str(requirements)],
             work, env, timeout)
        # The proof is only worth something if lapse itself cannot be imported there.
        _run("checking that lapse is not importable in the fresh venv",
             [str(bin_dir / "python"), "-c", "import importlib.util, sys; "
              "sys.exit(1 if importlib.util.find_spec('features') or importlib.util.find_spec('training') else 0)"],
             work, env, timeout)
        predictions = work / "predictions.json"
        _run("mlflow models predict", [str(bin_dir / "mlflow"), "models", "predict", "-m", str(model_dir),
                                       "-i", str(example), "-t", "json", "-o", str(predictions),
                                       "--env-manager", "local"], work, env, timeout)
        output = json.loads(predictions.read_text())["predictions"]
        if not output or not isinstance(output, list):
            raise ModelCheckError(f"{model_uri}: mlflow models predict returned no rows")
        pins = [line.strip() for line in requirements.read_text().splitlines() if line.strip()]
        return ModelCheck(model_uri, pins, list(output[0]), len(output))


def main(argv: list[str] | None = None) -> int:
    """`python -m training.model_check [MODEL_URI]`: check the candidate (or MODEL_URI); exit 1 on failure."""
    args = sys.argv[1:] if argv is None else argv
    config = TrainingConfig()
    uri = args[0] if args else f"models:/{config.registered_model}@{config.candidate_alias}"
    try:
        result = check_model(uri, tracking_uri(DEFAULT_PATHS))
    except ModelCheckError as error:
        print(f"model check failed: {error}", file=sys.stderr)
        return 1
    print(f"{result.model_uri}: predicted {result.rows} row(s) ({len(result.output_columns)} columns) in a fresh "
          f"venv from its {len(result.requirements)} pinned requirements")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
