"""Log filters that keep patient values out of the service's logs.

Exception messages are where submitted values leak: pydantic's ValidationError quotes the
offending input, a KeyError quotes the key, a ValueError whatever its author put in it.
The filter keeps the exception's type and the code path (file, line, function) and drops
every message, so a log line says what broke and where, never with what.
"""

from __future__ import annotations

import logging
import traceback
from types import TracebackType

WITHHELD = "(message withheld: it may quote submitted values)"


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
