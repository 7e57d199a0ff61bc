"""The clinician page's jobs, run in the page's own process (serving/page_worker.py): the patient list,
Today's queue and one patient, read from the decision log and the data folder.

`main` (the page's process) reads a `Setup` from stdin, then jobs, and answers each on stdout with
("ok", answer) or ("error", the error's type name): never a message, which may quote values. The list
keeps what Today needs (rows, latest decisions, each patient's activity) here, so only the finished JSON
bytes go back to the scoring process. Its own log lines (stderr, the service's log) go through the same
redacting filter as the service's.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from models.loaded import LoadedModel
from models.reasons import group_reasons
from outreach.settings import PolicySettings

from .decision_log import make_engine
from .logging import install_redaction, install_thread_hook
from .page_worker import ModelJob, Setup, read_frame, write_frame
from .timeline import CohortSource
from .ui_data import latest_two, newest_decision, patient_list, patient_view, recompute
from .work_queue import Activity, activity, assignments, ensure_tables, marks_by_patient, today, why_now

log = logging.getLogger("lapse.serving.ui")
# Below the scoring process's priority: on a busy machine /score gets the CPU first.
NICENESS = 10


@dataclass(frozen=True)
class OverviewJob:
    """Build the patient list from the decision log and the data folder now."""


@dataclass(frozen=True)
class TodayJob:
    """Today's queue under `policy`, from the latest list."""

    policy: PolicySettings


@dataclass(frozen=True)
class PatientJob:
    """Everything one patient's page shows."""

    patient_id: str


@dataclass(frozen=True)
class Overview:
    """The list as JSON, and the decision log's newest row id when it was read."""

    body: bytes
    last_decision: int | None


@dataclass(frozen=True)
class Listing:
    """What Today reuses of the latest list: rows, latest decisions, each patient's activity."""

    version: str | None
    rows: list[dict[str, Any]]
    latest: dict[str, dict[str, Any]]
    states: dict[str, Activity]
    lapsed_after: int


def encode(content: Any) -> bytes:
    """JSON as the page's replies carry it (as Starlette's JSONResponse writes it)."""
    return json.dumps(content, ensure_ascii=False, allow_nan=False, indent=None, separators=(",", ":")).encode()


class PageJobs:
    """The page's work on one decision log and data folder, with the model the service sent last."""

    def __init__(self, setup: Setup) -> None:
        self.setup = setup
        self.config = setup.config
        self.engine = make_engine(setup.decision_log_url, busy_ms=setup.busy_ms)
        self.cohort = CohortSource(setup.data_dir, setup.config.data_check_seconds)
        self.model: LoadedModel | None = None
        self.listing: Listing | None = None

    def run(self, job: Any) -> Any:
        if isinstance(job, OverviewJob):
            return self.overview()
        if isinstance(job, TodayJob):
            return self.today(job.policy)
        if isinstance(job, PatientJob):
            return self.patient(job.patient_id)
        raise TypeError("unknown job")

    def overview(self) -> Overview:
        """The patient list from the decision log and each patient's activity from the data folder.

        Nothing is re-scored here (that is done per patient page and for Today's few patients), so the
        first load after a restart is as quick as the next. `built_at` says when the log was read.
        """
        model, engine = self.model, self.engine
        built_at = datetime.now(timezone.utc)
        last_decision = newest_decision(engine)
        rows = latest_two(engine)
        latest = {r["patient_id"]: r for r in rows if r["at_rank"] == 1}
        lapsed_after = self.config.lapsed_after_days or (model.horizon_days if model else 14)
        try:
            states = activity(self.cohort, {pid: r["as_of"] for pid, r in latest.items()})
        except Exception as error:  # noqa: BLE001 - the list still shows without activity
            log.warning("clinician page: activity not read from the data folder (%s)", type(error).__name__)
            states = {}
        listing = patient_list(rows, self.config.list_limit, states, lapsed_after)
        listing["tiers"] = [name for name, _ in model.tiers] if model else sorted({p["tier"] for p in
                                                                                  listing["patients"]})
        listing["model"] = None if model is None else {"name": model.name, "version": model.version}
        listing["horizon_days"] = None if model is None else model.horizon_days
        listing["timeline_available"] = self.cohort.configured
        listing["lapsed_after_days"] = lapsed_after
        listing["built_at"] = built_at.isoformat()
        self.listing = Listing(None if model is None else model.version, listing["patients"], latest, states,
                               lapsed_after)
        return Overview(encode(listing), last_decision)

    def today(self, policy: PolicySettings) -> bytes:
        """Today's queue from the latest list (built first if there is none for the served model)."""
        model, engine, config = self.model, self.engine, self.config
        if self.listing is None or self.listing.version != (None if model is None else model.version):
            self.overview()
        snapshot = self.listing
        ensure_tables(engine)
        coaches = assignments(engine)
        capacity = config.today_capacity if policy.capacity_per_day is None else policy.capacity_per_day
        chosen = today(snapshot.rows, snapshot.states, coaches, policy, config.today_capacity,
                       snapshot.lapsed_after, config.recently_lapsed_days,
                       # One decision time per day, so a randomized policy's draws hold all day.
                       datetime.now(timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0))
        by_id = {r["patient_id"]: r for r in snapshot.rows}
        reasons: dict[str, str] = {}
        if model is not None and chosen:
            try:
                answers = recompute(model, self.cohort, [snapshot.latest[c["patient_id"]] for c in chosen],
                                    len(model.feature_names))
            except Exception as error:  # noqa: BLE001 - the queue still shows without the reason words
                log.warning("clinician page: reasons for today's queue not recomputed (%s)", type(error).__name__)
                answers = {}
            for pid, answer in answers.items():
                # The line already says when they last used the program; background is not a "why now".
                raising = [g for g in group_reasons(answer.score.reasons, 5) if g.raises
                           and g.theme not in ("inactivity", "background", "time")]
                if raising:
                    reasons[pid] = raising[0].sentence
        marks = marks_by_patient(engine)
        rows = []
        for c in chosen:
            row = by_id[c["patient_id"]]
            state = snapshot.states.get(c["patient_id"])
            rows.append({**c, "risk": row["risk"], "tier": row["tier"], "program": row["program"],
                         "why": why_now(row, state, reasons.get(c["patient_id"]), c["section"] == "lapsed"),
                         "coach": coaches.get(c["patient_id"]),
                         "marks": marks.get(c["patient_id"], [])})
        return encode({"capacity": capacity, "policy": policy.policy, "lapsed_after_days": snapshot.lapsed_after,
                       "recently_lapsed_days": config.recently_lapsed_days, "patients": rows,
                       "activity_known": bool(snapshot.states), "coaches": sorted(set(coaches.values()))})

    def patient(self, patient_id: str) -> bytes | None:
        """One patient's page as JSON, or None if the decision log has no score for the patient."""
        view = patient_view(self.engine, patient_id, self.model, self.cohort, self.setup.top_reasons,
                            self.config.timeline_days)
        return None if view is None else encode(view)


def main() -> None:
    """Answer the scoring process's jobs until it closes our stdin."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a terminal's Ctrl-C is the service's to handle
    os.nice(NICENESS)
    replies = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())  # a library's stray print cannot corrupt the replies
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    install_redaction(logging.WARNING)
    install_thread_hook()
    jobs_in = sys.stdin.buffer
    try:
        jobs = PageJobs(read_frame(jobs_in))
        while True:
            job = read_frame(jobs_in)
            if isinstance(job, ModelJob):
                jobs.model = job.model
                continue
            try:
                reply = ("ok", jobs.run(job))
            except Exception as error:  # noqa: BLE001 - the type only: messages may quote values
                reply = ("error", type(error).__name__)
            write_frame(replies, reply)
    except (EOFError, BrokenPipeError):
        return  # the service closed the pipe: it is stopping or gone

