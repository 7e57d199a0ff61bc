"""`lapse serve`: run the risk service (BentoML) on the model behind a registry alias."""

from __future__ import annotations

import argparse
import ipaddress
import os
import sys
from pathlib import Path

from config import ServingConfig

EXIT_NOT_CONFIGURED = 2
_DEFAULTS = ServingConfig()
# With several workers an /admin/reload reaches one of them; the others follow by polling.
_MULTI_WORKER_POLL_SECONDS = 10.0


def register(subparsers) -> None:
    """Add the `serve` sub-command."""
    parser = subparsers.add_parser(
        "serve",
        help="serve risk scores, reasons and support decisions over HTTP",
        description="Start the lapse risk service (BentoML) on the registered model behind an alias. "
        "Clients need an API key: set LAPSE_API_KEYS (comma-separated) or LAPSE_API_KEYS_FILE; "
        "LAPSE_ADMIN_KEY enables POST /admin/reload. The MLflow store is MLFLOW_TRACKING_URI or .lapse/mlflow.db.",
    )
    parser.add_argument("--host", default=_DEFAULTS.host, help="address to listen on (default %(default)s)")
    parser.add_argument("--port", type=int, default=_DEFAULTS.port, help="port to listen on (default %(default)s)")
    parser.add_argument("--workers", type=int, default=_DEFAULTS.workers,
                        help="server processes, each with its own copy of the model (default %(default)s)")
    parser.add_argument("--alias", default=_DEFAULTS.alias, help="registry alias to serve (default %(default)s)")
    parser.add_argument("--model-name", default=_DEFAULTS.model_name,
                        help="registered model name (default %(default)s)")
    parser.add_argument("--tracking-uri", default=None, help="MLflow tracking/registry URI (default: "
                        "MLFLOW_TRACKING_URI, else sqlite under .lapse/)")
    parser.add_argument("--max-batch-size", type=int, default=_DEFAULTS.max_batch_size,
                        help="most patients per /score or /triage request; more get 422 (default %(default)s)")
    parser.add_argument("--max-body-bytes", type=int, default=_DEFAULTS.max_body_bytes,
                        help="largest request body; larger get 413 (default %(default)s)")
    parser.add_argument("--decision-log", default=_DEFAULTS.decision_log_url, metavar="URL",
                        help="SQLAlchemy URL of the decision log, e.g. postgresql+psycopg://host/db "
                        "(default: sqlite under .lapse/decisions.db)")
    parser.add_argument("--tiers", default=_DEFAULTS.tiers_source, metavar="SOURCE",
                        help="'model' for the tier cut-points in the model's metadata, or a JSON file "
                        '{"tiers": [{"name": ..., "min_risk": ...}], "trigger_risk": ...} (default %(default)s)')
    parser.add_argument("--poll-seconds", type=float, default=None,
                        help="check the alias every N seconds and swap to a new version (default: off with one "
                        f"worker, {_MULTI_WORKER_POLL_SECONDS:g} with several)")
    parser.add_argument("--top-reasons", type=int, default=_DEFAULTS.top_reasons,
                        help="reasons returned per patient (default %(default)s)")
    parser.add_argument("--data", default=_DEFAULTS.data_dir, metavar="DIR",
                        help="data folder (patients + events tables) the clinician page at /ui/ reads engagement "
                        "timelines from (default: none, the page says the timeline is unavailable)")
    parser.set_defaults(func=run)


def config_from_args(args: argparse.Namespace) -> ServingConfig:
    """The ServingConfig the command line asks for."""
    poll = args.poll_seconds
    if poll is None:
        poll = _MULTI_WORKER_POLL_SECONDS if args.workers > 1 else 0.0
    return ServingConfig(
        host=args.host, port=args.port, workers=args.workers, alias=args.alias, model_name=args.model_name,
        max_batch_size=args.max_batch_size, max_body_bytes=args.max_body_bytes,
        decision_log_url=args.decision_log, tiers_source=args.tiers, poll_seconds=poll,
        top_reasons=args.top_reasons,
        data_dir=str(Path(args.data).resolve()) if getattr(args, "data", "") else "",
    )


def _problems(config: ServingConfig) -> list[str]:
    from serving.auth import KeyRing

    out = []
    if not KeyRing.from_env().configured:
        out.append("no API keys: set LAPSE_API_KEYS (comma-separated) or LAPSE_API_KEYS_FILE")
    if config.workers < 1 or not (0 < config.port < 65536) or config.max_batch_size < 1 or config.top_reasons < 0:
        out.append("--workers, --max-batch-size must be at least 1, --port between 1 and 65535")
    if config.data_dir and not Path(config.data_dir).is_dir():
        out.append(f"--data: {config.data_dir} is not a folder")
    return out


def run(args: argparse.Namespace) -> int:
    """Check the settings, then replace this process with the BentoML server."""
    from serving.launcher import base_url, serve_argv, serve_env

    config = config_from_args(args)
    problems = _problems(config)
    if problems:
        for line in problems:
            print(f"lapse serve: {line}", file=sys.stderr)
        return EXIT_NOT_CONFIGURED
    env = serve_env(config)
    if args.tracking_uri:
        env["MLFLOW_TRACKING_URI"] = args.tracking_uri
    try:
        if not ipaddress.ip_address(config.host).is_loopback:
            print(f"lapse serve: listening on {config.host}, reachable from other machines", file=sys.stderr)
    except ValueError:
        print(f"lapse serve: --host must be an IP address, not {config.host!r}", file=sys.stderr)
        return EXIT_NOT_CONFIGURED
    if not env.get("LAPSE_ADMIN_KEY"):
        print("lapse serve: LAPSE_ADMIN_KEY is not set, so POST /admin/reload is refused", file=sys.stderr)
    print(f"lapse serve: {config.model_name}@{config.alias} at {base_url(config)}", file=sys.stderr, flush=True)
    print(f"lapse serve: clinician page at {base_url(config)}/ui/", file=sys.stderr, flush=True)
    argv = serve_argv(config)
    os.execve(argv[0], argv, env)
    return 0  # not reached
