"""The clinician page's own process: the heavy reads of the page run there, off the scoring process.

Building the patient list reads the whole decision log and every listed patient's events from the data
folder, Today re-explains a few patients and a patient's page re-scores one: seconds of Python work for a
large cohort. In the scoring worker that work holds the interpreter lock against /score's event loop, so
`/score` slowed down while a clinician loaded the page. `PageWorker` runs it in one child process
(`serving.page_jobs.main`), started when first needed and restarted if it dies, at a lower CPU
priority than the scoring process. Jobs go to it one at a time over its stdin and the answers come back
over its stdout, as length-prefixed pickles of plain objects (serving/page_jobs.py); the model is sent
once per loaded version. The child ends when its stdin closes: on `stop()` or when the scoring process
exits in any way, so no process outlives the service.
"""

from __future__ import annotations

import os
import pickle
import struct
import subprocess
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from config import ClinicianPageConfig
from models.loaded import LoadedModel

_LENGTH = struct.Struct("<Q")
# Where the lapse packages are, so the child imports the same code whatever its working directory.
_ROOT = Path(__file__).resolve().parents[1]
# The child's numeric libraries use one thread: it is background work beside the scoring process.
_ONE_THREAD = {name: "1" for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}
_UNSENT = object()
# Imported, not run as __main__: the jobs' classes must be the ones the scoring process pickles.
_CHILD = "from serving.page_jobs import main; main()"


class PageWorkFailed(RuntimeError):
    """A job of the page's process failed; the message names the error type, never values."""


def cause(error: Exception) -> str:
    """What broke, for a log line: a failed job's error type, or the error's own type; never a message
    (it may quote values)."""
    return str(error) if isinstance(error, PageWorkFailed) else type(error).__name__


@dataclass(frozen=True)
class Setup:
    """What the page's process reads from: plain, picklable settings (no engines, no open files)."""

    decision_log_url: str
    data_dir: str | None
    config: ClinicianPageConfig
    busy_ms: int
    top_reasons: int


@dataclass(frozen=True)
class ModelJob:
    """Use this model (the served LoadedModel, or None) from now on; the child sends no answer."""

    model: LoadedModel | None


def write_frame(stream: IO[bytes], value: Any) -> None:
    """Send `value` as one length-prefixed pickle."""
    data = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(_LENGTH.pack(len(data)) + data)
    stream.flush()


def read_frame(stream: IO[bytes]) -> Any:
    """The next value sent by `write_frame` (EOFError when the other side has closed)."""
    head = stream.read(_LENGTH.size)
    if len(head) < _LENGTH.size:
        raise EOFError("the other side closed the pipe")
    size = _LENGTH.unpack(head)[0]
    data = stream.read(size)
    if len(data) < size:
        raise EOFError("the other side closed the pipe")
    return pickle.loads(data)


class PageWorker:
    """The page's child process, seen from the scoring process: `call(job, model)` runs one job there.

    Calls block (run them in a worker thread) and are served one at a time; a job that finds the child
    dead starts a new one and is tried once more.
    """

    def __init__(self, setup: Callable[[], Setup]) -> None:
        self._setup = setup
        self._lock = threading.Lock()
        self._process: subprocess.Popen | None = None
        self._model_sent: Any = _UNSENT
        self._stopped = False

    def _start(self) -> None:
        setup = self._setup()
        env = {**os.environ, **_ONE_THREAD,
               "PYTHONPATH": os.pathsep.join(p for p in (str(_ROOT), os.environ.get("PYTHONPATH", "")) if p)}
        self._process = subprocess.Popen([sys.executable, "-c", _CHILD], stdin=subprocess.PIPE,
                                         stdout=subprocess.PIPE, env=env, close_fds=True)
        self._model_sent = _UNSENT
        write_frame(self._process.stdin, setup)

    def _exchange(self, job: Any, model: LoadedModel | None) -> tuple[str, Any]:
        if self._process is None or self._process.poll() is not None:
            self._end()
            self._start()
        process = self._process
        if model is not self._model_sent:
            write_frame(process.stdin, ModelJob(model))
            self._model_sent = model
        write_frame(process.stdin, job)
        return read_frame(process.stdout)

    def call(self, job: Any, model: LoadedModel | None) -> Any:
        """Run `job` (a job of serving/page_jobs.py) in the child with the served `model`; its answer."""
        with self._lock:
            for attempt in range(2):
                if self._stopped:
                    raise PageWorkFailed("the page is stopping")
                try:
                    status, value = self._exchange(job, model)
                except (OSError, EOFError, pickle.UnpicklingError):
                    self._end()
                    if attempt == 1 or self._stopped:
                        raise PageWorkFailed("the page's process stopped") from None
                    continue
                if status != "ok":
                    raise PageWorkFailed(value)
                return value

    def _end(self) -> None:
        """Kill the child, if any, and release its pipes."""
        process, self._process = self._process, None
        if process is None:
            return
        # Killed before its input is closed: closing waits for a write under way in another thread (a model being
        # sent to a child still starting up), which a dead child's broken pipe ends at once.
        process.kill()
        try:
            process.stdin.close()
        except OSError:
            pass
        process.wait()
        process.stdout.close()

    def stop(self) -> None:
        """End the child at once, with the service. Its jobs read (a missing table is created in one transaction;
        the page's writes are made in the scoring process), so a job cut short loses nothing, and nobody waits for
        its answer any more; letting it finish held up a shutdown during the page's first build by up to 5 s."""
        self._stopped = True
        self._end()
