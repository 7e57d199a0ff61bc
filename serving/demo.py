"""The end of `lapse demo`: start the service on the demo model, score the active patients, show a request."""

from __future__ import annotations

import json
import os
import secrets
import signal
from contextlib import contextmanager
from pathlib import Path

import httpx
import pandas as pd

from config import LabelConfig, ServingConfig
from features.contract import OWN_ENGAGEMENT, EventType

from .launcher import base_url, page_url, start_service, stop_service, wait_ready
from .payloads import json_value
from .settings import hardening


class Stopped(Exception):
    """SIGTERM or SIGINT arrived: stop the demo's server and leave."""


@contextmanager
def stop_on_signals():
    """Turn SIGTERM and SIGINT into `Stopped` while the demo runs, so its server is always stopped."""
    def raise_stopped(signum, _frame) -> None:  # noqa: ANN001 - signal handler signature
        raise Stopped(signal.Signals(signum).name)

    previous = {sig: signal.signal(sig, raise_stopped) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def demo_key(work: Path) -> str:
    """The API key for the demo: LAPSE_API_KEYS' first key, else one made once and kept under `work`."""
    given = [k.strip() for k in os.environ.get("LAPSE_API_KEYS", "").split(",") if k.strip()]
    if given:
        return given[0]
    path = work / "demo-api-key"
    if not path.exists():
        work.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_urlsafe(24) + "\n")
        path.chmod(0o600)
    return path.read_text().strip()


def active_patients(patients: pd.DataFrame, events: pd.DataFrame, as_of: pd.Timestamp,
                    labels: LabelConfig = LabelConfig()) -> list[str]:
    """Ids of patients still engaged at `as_of` (the label's eligibility rule), in id order."""
    recent = events[events["event_type"].isin([str(t) for t in OWN_ENGAGEMENT])
                    & (events["timestamp"] > as_of - pd.Timedelta(days=labels.engaged_within_days))
                    & (events["timestamp"] <= as_of)]
    gone = events.loc[(events["event_type"] == str(EventType.DISCONTINUED)) & (events["timestamp"] <= as_of),
                      "patient_id"]
    ids = set(recent["patient_id"]) - set(gone)
    return sorted(ids & set(patients["patient_id"]))


def request_items(patients: pd.DataFrame, events: pd.DataFrame, ids: list[str], as_of: pd.Timestamp) -> list[dict]:
    """Score-request items (profile + raw events up to `as_of`) for the given patients."""
    profiles = patients.set_index("patient_id")
    upto = events[events["patient_id"].isin(ids) & (events["timestamp"] <= as_of)].sort_values(["patient_id", "timestamp"])
    by_patient = {pid: rows for pid, rows in upto.groupby("patient_id", sort=False)}
    items = []
    for pid in ids:
        rows = by_patient.get(pid, upto.iloc[:0])
        profile = {k: json_value(v) for k, v in profiles.loc[pid].items()}
        items.append({
            "patient_id": pid,
            "as_of": as_of.isoformat(),
            "profile": {k: v for k, v in profile.items() if v is not None},
            "events": [{"timestamp": t.isoformat(), "event_type": e, **({"value": float(v)} if v == v else {})}
                       for t, e, v in zip(rows["timestamp"], rows["event_type"], rows["value"])],
        })
    return items


def batches(items: list[dict], max_patients: int, max_bytes: int) -> list[list[dict]]:
    """Split score-request items into requests within the service's batch and body limits."""
    out: list[list[dict]] = [[]]
    size = 0
    for item in items:
        item_bytes = len(json.dumps(item)) + 2
        if out[-1] and (len(out[-1]) >= max_patients or size + item_bytes > max_bytes):
            out.append([])
            size = 0
        out[-1].append(item)
        size += item_bytes
    return [b for b in out if b]


def serve_demo(data_dir: Path, work: Path, port: int) -> int:
    """Start the service on the demo model, fill its decision log, print a sample call, serve until Ctrl-C."""
    key = demo_key(work)
    work.mkdir(parents=True, exist_ok=True)
    config = ServingConfig(port=port, data_dir=str(data_dir),
                           decision_log_url=f"sqlite:///{work / 'demo-decisions.db'}")
    log = (work / "demo-service.log").open("ab")
    with stop_on_signals():
        try:
            process = start_service(config, env={**os.environ, "LAPSE_API_KEYS": key}, output=log)
        except Stopped:
            log.close()
            return 0
        try:
            _run_demo(process, config, data_dir, key, work)
        except (Stopped, KeyboardInterrupt):
            pass
        finally:
            stop_service(process, timeout=hardening().drain_timeout_s)
            log.close()
    return 0


def _run_demo(process, config: ServingConfig, data_dir: Path, key: str, work: Path) -> None:
    """Fill the decision log, print the sample call, then wait for the server (until a signal stops the demo).

    The data folder is read and the requests built while the server starts (seconds of imports and model
    loading in its own processes), not after it is ready."""
    from features.io import read_data_end
    from features.validate import load_cohort

    cohort = load_cohort(data_dir)
    as_of = read_data_end(data_dir, cohort.events)
    ids = active_patients(cohort.patients, cohort.events, as_of)
    items = request_items(cohort.patients, cohort.events, ids, as_of)
    url = base_url(config)
    wait_ready(url, process, timeout=180)
    headers = {"Authorization": f"Bearer {key}"}
    triggered = 0
    with httpx.Client(base_url=url, headers=headers, timeout=120) as client:
        for batch in batches(items, config.max_batch_size, config.max_body_bytes // 2):
            answer = client.post("/score", json={"patients": batch})
            answer.raise_for_status()
            triggered += sum(r["support"]["trigger"] for r in answer.json()["results"])
        sample = min(items, key=lambda item: len(item["events"]))
        request_file = work / "demo-request.json"
        request_file.write_text(json.dumps({"patients": [sample]}, indent=2))
        reply = client.post("/score", json={"patients": [sample]})
    print(f"scored {len(items):,} patients still engaged at {as_of:%Y-%m-%d}; "
          f"support triggered for {triggered:,}")
    print("\nSample request (simulated patient):")
    print(f"  curl -s -X POST {url}/score -H 'Authorization: Bearer {key}' "
          f"-H 'Content-Type: application/json' -d @{request_file}")
    print("Answer:")
    print(json.dumps(reply.json(), indent=2))
    print(f"\nRisk service:    {url}  (API key in {work / 'demo-api-key'} unless LAPSE_API_KEYS is set)")
    print(f"Clinician page:  {page_url(url)}  (sign in with the API key: {key})")
    print(f"OpenAPI spec:    {url}/docs.json")
    print("Serving until Ctrl-C.", flush=True)
    process.wait()
