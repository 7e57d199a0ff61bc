"""Start the lapse risk service (BentoML) on the registered model behind an alias, with the clinician page at
/ui/. Clients need an API key: set LAPSE_API_KEYS (comma-separated) or LAPSE_API_KEYS_FILE; LAPSE_ADMIN_KEY
enables POST /admin/reload. The MLflow store is MLFLOW_TRACKING_URI or .lapse/mlflow.db. Settings: the
[serving] and [registry] tables of lapse.toml (--config FILE, else the --data folder's)."""

from __future__ import annotations

import ipaddress
import os
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from cli.options import ConfigFile
from config import LapseError, ServingConfig, load_settings

NAME = "serve"
_DEFAULTS = ServingConfig()
# With several workers an /admin/reload reaches one of them; the others follow by polling.
_MULTI_WORKER_POLL_SECONDS = 10.0


class NotConfigured(LapseError):
    """The service cannot start as configured (no client keys, a data folder that is not one)."""


def _flags(**given) -> dict:
    names = {"host": "--host", "port": "--port", "workers": "--workers", "alias": "--alias",
             "max_batch_size": "--max-batch-size", "max_body_bytes": "--max-body-bytes",
             "decision_log_url": "--decision-log", "tiers_source": "--tiers", "poll_seconds": "--poll-seconds",
             "top_reasons": "--top-reasons", "data_dir": "--data"}
    flags = {names[key]: (("serving", key), value) for key, value in given.items()
             if key in names and value is not None}
    if given.get("model_name") is not None:
        flags["--model-name"] = (("registry", "registered_model"), given["model_name"])
    return flags


def config_from_settings(serving: ServingConfig, poll_given: bool) -> ServingConfig:
    """The ServingConfig to start: several workers poll the alias unless a poll interval was set."""
    if not poll_given and serving.workers > 1 and serving.poll_seconds == 0:
        serving = serving.model_copy(update={"poll_seconds": _MULTI_WORKER_POLL_SECONDS})
    if serving.data_dir:
        serving = serving.model_copy(update={"data_dir": str(Path(serving.data_dir).resolve())})
    return serving


def _problems(config: ServingConfig) -> list[str]:
    from serving.auth import KeyRing

    out = []
    if not KeyRing.from_env().configured:
        out.append("no API keys: set LAPSE_API_KEYS (comma-separated) or LAPSE_API_KEYS_FILE")
    if config.data_dir and not Path(config.data_dir).is_dir():
        out.append(f"--data: {config.data_dir} is not a folder")
    try:
        ipaddress.ip_address(config.host)
    except ValueError:
        out.append(f"--host must be an IP address, not {config.host!r}")
    return out


def command(
    host: Annotated[Optional[str], typer.Option("--host", help=f"address to listen on (default {_DEFAULTS.host})")]
    = None,
    port: Annotated[Optional[int], typer.Option("--port", help=f"port to listen on (default {_DEFAULTS.port})")]
    = None,
    workers: Annotated[Optional[int], typer.Option(
        "--workers", help=f"server processes, each with its own copy of the model (default {_DEFAULTS.workers})")]
    = None,
    alias: Annotated[Optional[str], typer.Option(
        "--alias", help=f"registry alias to serve (default: [registry] champion_alias, {_DEFAULTS.alias})")] = None,
    model_name: Annotated[Optional[str], typer.Option(
        "--model-name", help=f"registered model name, [registry] registered_model (default {_DEFAULTS.model_name})")]
    = None,
    tracking_uri: Annotated[Optional[str], typer.Option(
        "--tracking-uri", help="MLflow tracking/registry URI (default: MLFLOW_TRACKING_URI, else sqlite under "
        ".lapse/)")] = None,
    max_batch_size: Annotated[Optional[int], typer.Option(
        "--max-batch-size", help="most patients per /score or /triage request; more get 422 "
        f"(default {_DEFAULTS.max_batch_size})")] = None,
    max_body_bytes: Annotated[Optional[int], typer.Option(
        "--max-body-bytes", help=f"largest request body; larger get 413 (default {_DEFAULTS.max_body_bytes})")]
    = None,
    decision_log: Annotated[Optional[str], typer.Option(
        "--decision-log", metavar="URL", help="SQLAlchemy URL of the decision log, e.g. "
        "postgresql+psycopg://host/db (default: sqlite under .lapse/decisions.db)")] = None,
    tiers: Annotated[Optional[str], typer.Option(
        "--tiers", metavar="SOURCE", help="'model' for the tier cut-points in the model's metadata, or a JSON file "
        '{"tiers": [{"name": ..., "min_risk": ...}], "trigger_risk": ...} (default model)')] = None,
    poll_seconds: Annotated[Optional[float], typer.Option(
        "--poll-seconds", help="check the alias every N seconds and swap to a new version (default: off with one "
        f"worker, {_MULTI_WORKER_POLL_SECONDS:g} with several)")] = None,
    top_reasons: Annotated[Optional[int], typer.Option(
        "--top-reasons", help=f"reasons returned per patient (default {_DEFAULTS.top_reasons})")] = None,
    data: Annotated[Optional[Path], typer.Option(
        "--data", metavar="DIR", help="data folder (patients + events tables) the clinician page at /ui/ reads "
        "engagement timelines from (default: none, the page says the timeline is unavailable)")] = None,
    config: ConfigFile = None,
) -> int:
    """Check the settings, then replace this process with the BentoML server."""
    from serving.launcher import base_url, serve_argv, serve_env
    from serving.settings import clinician_page_env, hardening_env
    from outreach.configured import policy_settings
    from serving.settings import outreach_env

    flags = _flags(host=host, port=port, workers=workers, alias=alias, model_name=model_name,
                   max_batch_size=max_batch_size, max_body_bytes=max_body_bytes, decision_log_url=decision_log,
                   tiers_source=tiers, poll_seconds=poll_seconds, top_reasons=top_reasons,
                   data_dir=str(data) if data is not None else None)
    settings = load_settings(data, config, flags)
    serving = config_from_settings(settings.serving, poll_given=poll_seconds is not None)
    problems = _problems(serving)
    if problems:
        raise NotConfigured("\n".join(problems))
    env = serve_env(serving)
    env.update(hardening_env(settings.hardening))
    env.update(clinician_page_env(settings.clinician_page))
    # A policy that cannot run (e.g. randomized without its secret) is refused here, before any server starts.
    policy_settings(settings.outreach, 0.5)
    env.update(outreach_env(settings.outreach))
    if tracking_uri:
        env["MLFLOW_TRACKING_URI"] = tracking_uri
    if not ipaddress.ip_address(serving.host).is_loopback:
        print(f"lapse serve: listening on {serving.host}, reachable from other machines", file=sys.stderr)
    if not env.get("LAPSE_ADMIN_KEY"):
        print("lapse serve: LAPSE_ADMIN_KEY is not set, so POST /admin/reload is refused", file=sys.stderr)
    print(f"lapse serve: {serving.model_name}@{serving.alias} at {base_url(serving)}", file=sys.stderr, flush=True)
    print(f"lapse serve: clinician page at {base_url(serving)}/ui/", file=sys.stderr, flush=True)
    argv = serve_argv(serving)
    os.execve(argv[0], argv, env)
    return 0  # not reached
