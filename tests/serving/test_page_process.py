"""Issue 12, item 10: the clinician page's work runs in a process of its own, not in the scoring process, and
the patient list is answered from its last build while decisions are being logged, for up to
`overview_cache_s` (the reply says when the list was built). A real server and its real page process."""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime

import httpx
import psutil
import pytest

from config import ClinicianPageConfig
from outreach.outcomes import create_tables
from serving import page_worker
from serving.decision_log import METADATA as DECISION_TABLES
from serving.decision_log import make_engine
from serving.launcher import stop_service
from serving.page_jobs import OverviewJob
from serving.page_worker import PageWorker, PageWorkFailed, Setup
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


def test_stopping_the_page_ends_its_process_at_once_and_refuses_further_jobs(tmp_path):
    """The service's shutdown does not wait for the page's job at hand (a first build takes seconds): the
    child is killed, not asked to finish, and the page says it is stopping."""
    url = f"sqlite:///{tmp_path / 'log.db'}"
    engine = make_engine(url)
    create_tables(engine, DECISION_TABLES)  # an empty decision log
    engine.dispose()
    worker = PageWorker(lambda: Setup(url, None, ClinicianPageConfig(), 1000, 3))
    worker.call(OverviewJob(), None)  # the child is running, waiting for its next job
    child = worker._process
    worker.stop()
    assert child.returncode == -signal.SIGKILL  # killed; asked to finish, it would have exited with 0
    with pytest.raises(PageWorkFailed, match="stopping"):
        worker.call(OverviewJob(), None)



def test_stopping_the_page_does_not_wait_for_a_child_that_is_not_reading(monkeypatch, tmp_path):
    """A model being sent to a child still starting up (not reading its input yet) must not hold the shutdown:
    the sending thread is blocked on the pipe, and closing the pipe first would wait for that write."""
    monkeypatch.setattr(page_worker, "_CHILD", "import time; time.sleep(120)")  # never reads its input
    worker = PageWorker(lambda: Setup(f"sqlite:///{tmp_path / 'log.db'}", None, ClinicianPageConfig(), 1000, 3))
    failures = []

    def send() -> None:
        try:
            worker.call(OverviewJob(), bytes(16 * 1024 * 1024))  # far more than a pipe holds
        except PageWorkFailed as error:
            failures.append(error)

    sending = threading.Thread(target=send, daemon=True)
    sending.start()
    sending.join(timeout=2)  # by now the child runs and the sender is blocked writing to it
    assert sending.is_alive()
    stopping = threading.Thread(target=worker.stop, daemon=True)
    stopping.start()
    stopping.join(timeout=30)
    assert not stopping.is_alive(), "stop() waited for the blocked write"
    sending.join(timeout=30)
    assert not sending.is_alive() and len(failures) == 1
