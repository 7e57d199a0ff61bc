"""Issue 12, item 10: the clinician page's work runs in a process of its own, not in the scoring process, and
the patient list is answered from its last build while decisions are being logged, for up to
`overview_cache_s` (the reply says when the list was built). A real server and its real page process."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime

import httpx
import psutil
import pytest

from serving.launcher import stop_service
from serving.settings import Hardening

# Long enough that no list is rebuilt for age during these tests.
CACHE_S = 3600.0


@pytest.fixture(scope="module")
def server(kit):
    running = kit.launch("page-process", settings=Hardening(overview_cache_s=CACHE_S))
    yield running
    stop_service(running.process)


@contextmanager
def _page(kit, running) -> Iterator[httpx.Client]:
    """A client signed in to the clinician page."""
    with httpx.Client(base_url=running.url, timeout=60) as client:
        assert client.post("/ui/login", data={"key": kit.key}, headers={"origin": running.url}).status_code == 303
        yield client


def _page_processes(running) -> list[psutil.Process]:
    """The server's descendants that run the page's jobs."""
    family = psutil.Process(running.process.pid).children(recursive=True)
    return [p for p in family if "serving.page_jobs" in " ".join(p.cmdline())]


def test_the_list_is_answered_from_its_last_build_while_decisions_are_logged(kit, server):
    with _page(kit, server) as page, server.client() as api:
        first = page.get("/ui/api/overview")
        assert first.status_code == 200
        built_at = datetime.fromisoformat(first.json()["built_at"])
        assert built_at.utcoffset() is not None
        scored = api.post("/score", json={"patients": [kit.item("pat-after-the-list")]})
        assert scored.status_code == 200
        risk = scored.json()["results"][0]["risk"]

        again = page.get("/ui/api/overview").json()
        # Within overview_cache_s the list is not rebuilt for the new decision: same build, without it.
        assert again["built_at"] == first.json()["built_at"]
        assert "pat-after-the-list" not in {p["patient_id"] for p in again["patients"]}
        # The patient's own page reads the log when asked: the new score is there at once.
        view = page.post("/ui/api/patient", json={"patient_id": "pat-after-the-list"})
        assert view.status_code == 200 and view.json()["risk"] == risk


def test_the_page_runs_in_a_process_of_its_own_below_the_scoring_priority_and_is_replaced_if_it_dies(kit, server):
    with _page(kit, server) as page, server.client() as api:
        assert api.post("/score", json={"patients": [kit.item("pat-page-process")]}).status_code == 200
        assert page.get("/ui/api/overview").status_code == 200
        (child,) = _page_processes(server)
        scoring = child.parent()
        assert "serving.page_jobs" not in " ".join(scoring.cmdline())
        assert child.nice() > scoring.nice()

        os.kill(child.pid, signal.SIGKILL)
        view = page.post("/ui/api/patient", json={"patient_id": "pat-page-process"})
        assert view.status_code == 200 and view.json()["patient_id"] == "pat-page-process"
        today = page.get("/ui/api/today")
        assert today.status_code == 200 and "patients" in today.json()
        (replacement,) = _page_processes(server)
        assert replacement.pid != child.pid
