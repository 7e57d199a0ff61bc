"""Two versions of lapse's service side by side: the same /score requests sent to each in turn.

The working tree's service and the service of an older commit (`--old`, e.g. the start of a change)
run at the same time, one worker each, on loopback, on the same registered model. The same /score
bodies (benchmarks/_serving_load.py) go to one, then the other, alternating which goes first, so a
change in the machine's speed hits both alike; it prints both p50s and the median of the paired
new/old ratios. Both run with this interpreter's packages. `--phase` picks the requests: 1,000-patient
batches (default: `feature_names` once and `values` per patient, which commits before that form cannot
take; `batch-named`: each patient's features by name), one patient with raw profile + 150 events, or one
patient with features.

    .venv/bin/python -P benchmarks/serving_ab.py --old 909b5ea [--phase batch|batch-named|raw|features]
"""

from __future__ import annotations

import argparse
import http.client
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

from config import DEFAULT_PATHS, ServingConfig
from models.scorer import load_scorer
from serving.launcher import SERVICE, free_port, serve_argv, serve_env, stop_service, wait_ready
from serving.settings import ENV_VAR

# The packages the helpers use are imported first: this folder has a features.py that would shadow them.
import features.point_in_time  # noqa: E402,F401
import simulation  # noqa: E402,F401

sys.path.append(str(Path(__file__).resolve().parent))
from _serving_load import Workload  # noqa: E402

KEY = "bench-key"
# --phase: the Workload's bodies and what they are.
PHASES = {"batch": ("batch_lapse", "1,000-patient /score batch, feature names once"),
          "batch-named": ("batch_lapse_named", "1,000-patient /score batch, features by name"),
          "raw": ("raw", "one patient, raw profile + 150 events"),
          "features": ("singles_lapse", "one patient, features")}
ROOT = Path(__file__).resolve().parent.parent


def start(tree: Path, work: Path, name: str, env: dict[str, str]) -> tuple[subprocess.Popen, int]:
    """The service of the code in `tree` (BentoML imports it from its working folder), on a free port."""
    config = ServingConfig(port=free_port(), decision_log_url=f"sqlite:///{work / (name + '.db')}")
    # A commit from before serving/server_main.py is started as it was then: plain `bentoml serve`.
    argv = serve_argv(config) if (tree / "serving" / "server_main.py").exists() else [
        sys.executable, "-m", "bentoml", "serve", SERVICE, "--host", config.host, "--port", str(config.port)]
    handed = serve_env(config, {**env, "PYTHONPATH": str(tree)})
    if tree != ROOT:
        # An older commit refuses settings it does not know yet: it gets only those set here (its defaults else).
        handed[ENV_VAR] = config.model_dump_json(exclude_defaults=True)
    process = subprocess.Popen(argv, env=handed,
                               cwd=tree, stdout=open(work / f"{name}.log", "wb"), stderr=subprocess.STDOUT,
                               start_new_session=True)
    return process, config.port


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--old", required=True, help="the older commit to compare with (any git revision)")
    parser.add_argument("--tracking-uri", default=DEFAULT_PATHS.tracking_uri)
    parser.add_argument("--phase", choices=sorted(PHASES), default="batch", help="which requests (default batch)")
    parser.add_argument("--requests", "--batches", type=int, default=None,
                        help="requests sent to each version (default 60 batches, 1,000 one-patient requests)")
    args = parser.parse_args()
    requests = args.requests or (60 if args.phase == "batch" else 1000)
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    # MLflow resolves models:/ URIs through the process-wide registry.
    os.environ["MLFLOW_TRACKING_URI"] = args.tracking_uri
    scorer = load_scorer("models:/lapse-dropout@champion", tracking_uri=args.tracking_uri)
    bodies = getattr(Workload(list(scorer.feature_names), scorer, scorer.metadata.feature_config()),
                     PHASES[args.phase][0])
    env = {**os.environ, "MLFLOW_TRACKING_URI": args.tracking_uri, "LAPSE_API_KEYS": KEY,
           "BENTOML_DO_NOT_TRACK": "True"}
    with tempfile.TemporaryDirectory(prefix="lapse-ab-") as tmp:
        work = Path(tmp)
        old_tree = work / "old"
        old_tree.mkdir()
        archive = subprocess.run(["git", "-C", str(ROOT), "archive", args.old], check=True, capture_output=True)
        subprocess.run(["tar", "-x", "-C", str(old_tree)], input=archive.stdout, check=True)
        servers = {"old": start(old_tree, work, "old", env), "new": start(ROOT, work, "new", env)}
        try:
            for process, port in servers.values():
                wait_ready(f"http://127.0.0.1:{port}", process, timeout=180)
            time.sleep(10)  # the clinician page's first build, after /readyz answers
            latencies = compare(servers, bodies, requests)
            memory = {name: resident_mb(process.pid) for name, (process, _) in servers.items()}
        finally:
            for process, _ in servers.values():
                stop_service(process)
    old, new = latencies["old"], latencies["new"]
    ratios = [b / a for a, b in zip(old, new)]
    p99 = {name: statistics.quantiles(values, n=100)[98] for name, values in latencies.items()}
    print(f"{PHASES[args.phase][1]}, {len(old)} to each version, alternating: {args.old} p50 "
          f"{statistics.median(old):.1f} ms (p99 {p99['old']:.1f}), working tree p50 {statistics.median(new):.1f} ms "
          f"(p99 {p99['new']:.1f}); median of paired new/old ratios {statistics.median(ratios):.2f}")
    print(f"resident memory of each service at the end (all its processes): {args.old} {memory['old']:.0f} MB, "
          f"working tree {memory['new']:.0f} MB")
    return 0


def resident_mb(pid: int) -> float:
    """Resident memory of a process and all its children, in MB."""
    root = psutil.Process(pid)
    total = 0
    for process in [root, *root.children(recursive=True)]:
        try:
            total += process.memory_info().rss
        except psutil.Error:
            pass
    return total / 2**20


def compare(servers: dict[str, tuple[subprocess.Popen, int]], bodies: list[bytes],
            requests: int) -> dict[str, list[float]]:
    """Latencies (ms) of `requests` requests to each server (cycling through `bodies`), the two taking turns."""
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {KEY}"}
    conns = {name: http.client.HTTPConnection("127.0.0.1", port, timeout=60) for name, (_, port) in servers.items()}

    def call(name: str, body: bytes) -> float:
        started = time.perf_counter()
        conns[name].request("POST", "/score", body=body, headers=headers)
        response = conns[name].getresponse()
        response.read()
        if response.status != 200:
            raise RuntimeError(f"{name}: HTTP {response.status}")
        return (time.perf_counter() - started) * 1e3

    for name in servers:  # warm the connection and code paths
        for k in range(20):
            call(name, bodies[k % len(bodies)])
    out: dict[str, list[float]] = {name: [] for name in servers}
    for k in range(requests):
        for name in (("old", "new") if k % 2 == 0 else ("new", "old")):
            out[name].append(call(name, bodies[k % len(bodies)]))
    return out


if __name__ == "__main__":
    sys.exit(main())
