"""Issue 12, item 1: a stalled or failed decision log never kills the writer, never yields a 200 without a
committed decision, shows up in /readyz with its reason, and recovers by itself once writable again."""

from __future__ import annotations

import logging
import shutil
import sqlite3
import threading
import time
from datetime import datetime, timezone

import httpx
import pytest

from config import ServingConfig
from serving.decision_log import Decision, DecisionLog, DecisionLogError, make_engine, read_decisions
from serving.launcher import stop_service
from serving.logging import install_thread_hook
from serving.settings import Hardening
from serving.work_queue import ensure_tables

SECRET_ID = "pat-SENTINEL-4471"


def _decision(pid: str) -> Decision:
    return Decision(request_id="r", endpoint="score", patient_id=pid, as_of=datetime.now(timezone.utc),
                    model_name="m", model_version="1", risk=0.5, tier="high", reasons=(("age", 0.1),),
                    trigger=True, priority="soon")


def _until(check, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.1)
    return check()


def _lock(path) -> sqlite3.Connection:
    """Another process's exclusive write lock on the decision log (what a stuck backup or admin would hold)."""
    holder = sqlite3.connect(path, timeout=10, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    return holder


def test_a_failed_commit_is_reported_and_the_writer_recovers_by_itself(tmp_path):
    path = tmp_path / "decisions.db"
    log = DecisionLog(f"sqlite:///{path}", busy_ms=300, retry_s=0.2)
    try:
        assert log.write([_decision("a")]) == 1 and log.healthy
        holder = _lock(path)
        with pytest.raises(DecisionLogError):
            log.write([_decision("b")])
        assert not log.healthy and "decision log" in log.problem
        # While unhealthy, new decisions are refused at once instead of waiting on the lock.
        with pytest.raises(DecisionLogError):
            log.submit([_decision("c")]).result(timeout=1)
        holder.rollback()
        holder.close()
        assert _until(lambda: log.healthy, 10), log.problem
        assert log.write([_decision("d")]) == 1
    finally:
        log.close()
    assert [row["patient_id"] for row in read_decisions(f"sqlite:///{path}")] == ["a", "d"]


def test_a_cancelled_waiter_is_skipped_and_a_commit_under_way_still_completes(tmp_path):
    path = tmp_path / "decisions.db"
    log = DecisionLog(f"sqlite:///{path}", busy_ms=5000, retry_s=0.2)
    try:
        holder = _lock(path)
        running = log.submit([_decision("running")])  # the writer takes it and waits on the lock
        time.sleep(0.3)
        waiting = log.submit([_decision("cancelled")])
        assert waiting.cancel()  # its request gave up (BentoML's timeout) before its commit began
        assert not running.cancel()  # a commit under way can no longer be called off
        holder.rollback()
        holder.close()
        assert running.result(timeout=10) == 1
        assert log.write([_decision("after")]) == 1  # the writer is alive
    finally:
        log.close()
    assert [row["patient_id"] for row in read_decisions(f"sqlite:///{path}")] == ["running", "after"]


def test_an_uncaught_thread_exception_goes_through_the_redacting_logger(capfd, caplog):
    install_thread_hook()

    def boom() -> None:
        raise ValueError(f"patient {SECRET_ID} risk 0.93")

    with caplog.at_level(logging.ERROR, logger="lapse"):
        thread = threading.Thread(target=boom, name="worker-x")
        thread.start()
        thread.join()
    captured = capfd.readouterr()
    assert SECRET_ID not in captured.err and SECRET_ID not in captured.out
    assert "uncaught exception in thread worker-x" in caplog.text and "ValueError" in caplog.text
    assert SECRET_ID not in caplog.text


def test_an_uncaught_exception_in_the_main_thread_goes_through_the_redacting_logger():
    import subprocess
    import sys

    # A process of lapse's (the clinician page's runs its jobs in its main thread) that fails outside any handler.
    code = ("from serving.logging import install_thread_hook; install_thread_hook(); "
            f"raise ValueError('patient {SECRET_ID} risk 0.93')")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert "uncaught exception in the main thread" in done.stderr and "ValueError" in done.stderr
    assert SECRET_ID not in done.stderr + done.stdout


def test_a_commit_stalled_past_the_request_timeout_leaves_the_service_working(kit):
    settings = Hardening(decision_log_busy_ms=4000, decision_log_retry_s=0.5)
    server = kit.launch("stall", ServingConfig(request_timeout_s=2.0), settings)
    try:
        with server.client() as client:
            item = kit.item(SECRET_ID)
            assert client.post("/score", json={"patients": [item]}).status_code == 200
            holder = _lock(server.decisions_path)
            stalled = client.post("/score", json={"patients": [kit.item("pat-stalled")]})
            assert stalled.status_code in (503, 504), stalled.text
            assert _until(lambda: client.get("/readyz").status_code == 503, 10)
            ready = client.get("/readyz")
            assert "decision log" in ready.json()["error"]
            assert client.post("/score", json={"patients": [item]}).status_code == 503
            holder.rollback()
            holder.close()
            assert _until(lambda: client.get("/readyz").status_code == 200, 20), server.logs()[-2000:]
            answered = [client.post("/score", json={"patients": [kit.item(f"pat-after-{i}")]})
                        for i in range(3)]
            assert [r.status_code for r in answered] == [200, 200, 200]
        logged = [row["patient_id"] for row in read_decisions(server.decisions_url)]
        # Every 200 has its committed decision; the request that timed out was not answered 200.
        assert logged[0] == SECRET_ID and logged[-3:] == ["pat-after-0", "pat-after-1", "pat-after-2"]
        assert set(logged) <= {SECRET_ID, "pat-stalled", "pat-after-0", "pat-after-1", "pat-after-2"}
    finally:
        stop_service(server.process)
    logs = server.logs()
    assert "InvalidStateError" not in logs
    assert SECRET_ID not in logs


def test_a_log_unwritable_at_start_recovers_once_it_is_fixed(kit):
    blocker = kit.trained.root / "not-a-folder"
    blocker.write_text("a file where the decision log's folder should be\n")
    settings = Hardening(decision_log_busy_ms=1000, decision_log_retry_s=0.5)
    server = kit.launch("unwritable", settings=settings, decisions_path=blocker / "decisions.db", ready=False)
    try:
        assert _until(lambda: _get(server.url + "/livez") == 200, 180), server.logs()[-3000:]
        assert server.process.poll() is None  # no crash loop
        with server.client() as client:
            refused = client.get("/readyz")
            assert refused.status_code == 503 and "decision log" in refused.json()["error"]
            assert client.post("/score", json={"patients": [kit.item()]}).status_code == 503
            blocker.unlink()
            blocker.mkdir()
            assert _until(lambda: client.get("/readyz").status_code == 200, 20), server.logs()[-2000:]
            assert client.post("/score", json={"patients": [kit.item()]}).status_code == 200
        assert len(read_decisions(server.decisions_url)) == 1
    finally:
        stop_service(server.process)
        shutil.rmtree(blocker, ignore_errors=True)


def _get(url: str) -> int:
    try:
        return httpx.get(url, timeout=2).status_code
    except httpx.TransportError:
        return 0



def test_an_answer_handed_over_before_its_request_gave_up_is_replayed_from_the_same_commit(tmp_path):
    from datetime import timedelta

    from serving.idempotency import Claim, IdempotencyStore

    url = f"sqlite:///{tmp_path / 'decisions.db'}"
    log = DecisionLog(url, busy_ms=5000, retry_s=0.2)
    store = IdempotencyStore(url, timedelta(hours=1))
    try:
        assert store.claim("key-1", "body-1").outcome == "claimed"
        claim = Claim("key-1")
        holder = _lock(tmp_path / "decisions.db")
        committed = claim.hand(b'{"results": "first"}', lambda within: log.submit([_decision("handed")], within))
        time.sleep(0.3)  # the writer has begun the commit and waits on the lock
        assert not claim.abandon()  # the request gives up (504): its commit can no longer be called off
        holder.rollback()
        holder.close()
        assert committed.result(timeout=10) == 1
        replay = store.claim("key-1", "body-1")  # the retry
        assert (replay.outcome, replay.status, replay.response) == ("replay", 200, b'{"results": "first"}')
    finally:
        log.close()
    assert [row["patient_id"] for row in read_decisions(url)] == ["handed"]


def test_a_request_that_gave_up_before_handing_over_records_nothing(tmp_path):
    from serving.idempotency import Claim

    url = f"sqlite:///{tmp_path / 'decisions.db'}"
    log = DecisionLog(url, busy_ms=5000, retry_s=0.2)
    try:
        claim = Claim("key-2")
        assert claim.abandon()  # gave up while still scoring: the key is released
        assert claim.hand(b"{}", lambda within: log.submit([_decision("late")], within)) is None
        assert log.write([_decision("next")]) == 1
    finally:
        log.close()
    assert [row["patient_id"] for row in read_decisions(url)] == ["next"]


def test_a_claim_left_pending_by_a_failed_commit_is_taken_over_once_stale(tmp_path):
    from datetime import timedelta

    from serving.idempotency import IdempotencyStore

    url = f"sqlite:///{tmp_path / 'decisions.db'}"
    store = IdempotencyStore(url, timedelta(hours=1), pending_stale=timedelta(seconds=0.5))
    assert store.claim("key-3", "body").outcome == "claimed"
    assert store.claim("key-3", "body").outcome == "pending"  # still being answered: 409
    time.sleep(0.6)
    assert store.claim("key-3", "body").outcome == "claimed"


def test_the_journal_is_checkpointed_outside_the_commits_and_stays_bounded(tmp_path):
    """SQLite's automatic checkpoint ran inside the commit that crossed its step (that request waited for it);
    the writer now copies the journal into the database after releasing the replies. The journal must still
    be recycled: writing forty batches of 1,000 decisions leaves it a fraction of what was written."""
    path = tmp_path / "decisions.db"
    log = DecisionLog(f"sqlite:///{path}", "normal", 5000, 0.5)
    try:
        journal_sizes = []
        for batch in range(40):
            assert log.submit([_decision(f"p{batch}-{i}") for i in range(1000)]).result(timeout=60) == 1000
            journal_sizes.append(path.with_name("decisions.db-wal").stat().st_size)
        with sqlite3.connect(path) as reader:
            assert reader.execute("select count(*) from decisions").fetchone()[0] == 40_000
        # Only the writer's own connections leave the checkpoint to it; other engines keep SQLite's.
        with log.engine.connect() as writer, make_engine(f"sqlite:///{path}").connect() as other:
            assert writer.exec_driver_sql("pragma wal_autocheckpoint").scalar() == 0
            assert other.exec_driver_sql("pragma wal_autocheckpoint").scalar() == 1000
        written = path.stat().st_size
    finally:
        log.close()
    assert written > 0
    # Without checkpoints the journal would hold all 40,000 rows; it is reused after each checkpoint.
    assert max(journal_sizes) < written / 2, (max(journal_sizes), written)


def test_processes_opening_one_new_database_together_all_get_their_tables(tmp_path):
    """The service and its page process start on a new database at once: neither may fail on the other's
    tables ("already exists") or on the switch to WAL ("database is locked")."""
    for round_ in range(40):
        url = f"sqlite:///{tmp_path / f'log{round_}.db'}"
        engines = [make_engine(url) for _ in range(4)]
        start, failures = threading.Barrier(len(engines)), []

        def open_store(engine):
            start.wait()
            try:
                ensure_tables(engine)
            except Exception as error:  # noqa: BLE001 - collected for the assertion
                failures.append(type(error).__name__)

        threads = [threading.Thread(target=open_store, args=(engine,)) for engine in engines]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        for engine in engines:
            engine.dispose()
        assert failures == [], f"round {round_}"
        with sqlite3.connect(tmp_path / f"log{round_}.db") as db:
            assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
            tables = {name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        assert {"coach_assignments", "outcomes"} <= tables
