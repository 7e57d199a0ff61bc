"""Log filters that keep patient values out of the service's logs.

Exception messages are where submitted values leak: pydantic's ValidationError quotes the
offending input, a KeyError quotes the key, a ValueError whatever its author put in it.
The filter keeps the exception's type and the code path (file, line, function) and drops
every message, so a log line says what broke and where, never with what. Every log line has its
control characters escaped (a request path with %0a cannot forge a line, %00 cannot write a NUL),
and an uncaught exception in any thread is logged through the same filter (`install_thread_hook`).
"""

from __future__ import annotations

import logging
import re
import sys
import threading
import traceback
from types import TracebackType

WITHHELD = "(message withheld: it may quote submitted values)"
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
log = logging.getLogger("lapse.serving")


def escape_controls(text: str) -> str:
    """`text` with every control character written as an escape (\\n, \\x00), so it stays one log line."""
    return _CONTROL.sub(lambda m: repr(m.group())[1:-1] if m.group() not in "\u2028\u2029"
                        else f"\\u{ord(m.group()):04x}", text)


def _describe(exc: BaseException) -> str:
    kind = type(exc)
    name = kind.__qualname__ if kind.__module__ in ("builtins", "__main__") else f"{kind.__module__}.{kind.__qualname__}"
    count = getattr(exc, "error_count", None)
    if callable(count):
        try:
            return f"{name}: {count()} error(s) {WITHHELD}"
        except Exception:  # noqa: BLE001 - a broken error object must not break logging
            pass
    return f"{name} {WITHHELD}"


def _frames(tb: TracebackType | None) -> list[str]:
    # Frame summaries name file, line and function and quote the source line: code, not data.
    return traceback.format_list(traceback.extract_tb(tb))


def redacted_traceback(exc: BaseException) -> str:
    """A traceback of `exc` and its causes with every exception message replaced by its type."""
    chain: list[BaseException] = []
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        chain.append(current)
        current = current.__cause__ or (None if current.__suppress_context__ else current.__context__)
    parts: list[str] = []
    for position, item in enumerate(reversed(chain)):
        if position:
            parts.append("\nThe above exception led to the following one:\n\n")
        parts.append("Traceback (most recent call last):\n")
        parts.extend(_frames(item.__traceback__))
        parts.append(_describe(item))
    return "".join(parts)


class RedactValues(logging.Filter):
    """Replace exception messages, and exceptions passed as arguments, with their types."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and record.exc_info[1] is not None:
            record.exc_text = redacted_traceback(record.exc_info[1])
            record.exc_info = None
        elif record.exc_text and "Traceback" in record.exc_text:
            record.exc_text = f"(exception details withheld) {WITHHELD}"
        if isinstance(record.msg, BaseException):
            record.msg = _describe(record.msg)
        if record.args:
            if isinstance(record.args, dict):
                record.args = {k: _describe(v) if isinstance(v, BaseException) else v for k, v in record.args.items()}
            else:
                record.args = tuple(_describe(a) if isinstance(a, BaseException) else a for a in record.args)
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a broken format must not break logging
            message = f"(unformattable log message from {record.name})"
        record.msg, record.args = escape_controls(message), None
        return True


def _all_handlers() -> list[logging.Handler]:
    handlers = list(logging.getLogger().handlers)
    for logger in list(logging.Logger.manager.loggerDict.values()):
        if isinstance(logger, logging.Logger):
            handlers.extend(logger.handlers)
    unique: dict[int, logging.Handler] = {id(h): h for h in handlers}
    return list(unique.values())


def install_redaction(level: int = logging.INFO) -> None:
    """Put the redacting filter on every log handler, and let lapse's own loggers speak at `level`."""
    for handler in _all_handlers():
        if not any(isinstance(f, RedactValues) for f in handler.filters):
            handler.addFilter(RedactValues())
    logging.getLogger("lapse").setLevel(level)


def _thread_failed(args: threading.ExceptHookArgs) -> None:
    if args.exc_type is SystemExit or args.exc_value is None:
        return
    name = args.thread.name if args.thread is not None else "unknown"
    # The traceback is redacted here, so it stays redacted even if no handler carries the filter.
    log.error("uncaught exception in thread %s\n%s", name, redacted_traceback(args.exc_value))


def _main_failed(exc_type: type[BaseException], exc_value: BaseException, _traceback: TracebackType | None) -> None:
    if exc_type is KeyboardInterrupt:
        return
    log.error("uncaught exception in the main thread\n%s", redacted_traceback(exc_value))


def install_thread_hook() -> None:
    """Send every thread's uncaught exception, the main thread's too, through the redacting logger instead of
    raw stderr."""
    threading.excepthook = _thread_failed
    sys.excepthook = _main_failed
