"""Logging set-up for a terminal and for the systemd journal, with secrets redacted.

Under systemd, stderr is a stream connected to journald, and systemd says so in
``JOURNAL_STREAM=<st_dev>:<st_ino>``. When stderr matches it, each line starts with a
``<N>`` syslog priority prefix (sd-daemon(3)), so the journal records the right priority
(``journalctl -p warning`` works), and carries no timestamp, since journald adds its own.
Anywhere else (a terminal, a pipe, a file), lines carry a timestamp and the level name.

:class:`RedactingFilter` sits on the handler, so it sees every record from every logger at
every level, and removes anything that looks like a Coze token (``pat_...``, ``sat_...``,
``czs_...``), an ``Authorization: Bearer ...`` value, a JWT, or a long base64 run (audio
that slipped into a log line) from the message, the arguments, and the traceback. Code
should never log those in the first place; this is the second line of defence.
"""

from __future__ import annotations

import logging
import os
import re
import sys
from collections.abc import Mapping
from typing import TextIO

__all__ = [
    "JournalFormatter",
    "RedactingFilter",
    "configure_logging",
    "is_journal_stream",
    "redact",
    "redact_library_loggers",
    "syslog_priority",
]

_REDACTIONS: tuple[tuple[re.Pattern[str], str], ...] = (
    # Coze personal access tokens (pat_), service access tokens (sat_), OAuth tokens (czs_).
    (re.compile(r"\b(pat|sat|czs)_[A-Za-z0-9_-]{12,}"), r"\1_<redacted>"),
    (re.compile(r"\b(Bearer)\s+[^\s\"',;]+", re.IGNORECASE), r"\1 <redacted>"),
    # A JSON Web Token: three base64url parts, the first a JSON object ("eyJ" = '{"').
    (re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*"), "<jwt redacted>"),
)
#: Base64 (standard or URL-safe) this long is data, not prose or a path: 75 bytes or more.
_BASE64_RUN = re.compile(r"(?<![A-Za-z0-9+/_-])[A-Za-z0-9+/_-]{100,}={0,2}")

_TTY_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"


def redact(text: str) -> str:
    """``text`` with tokens, bearer credentials, JWTs and long base64 runs replaced."""
    for pattern, replacement in _REDACTIONS:
        text = pattern.sub(replacement, text)
    return _BASE64_RUN.sub(lambda m: f"<base64 redacted, {len(m.group())} chars>", text)


def syslog_priority(levelno: int) -> int:
    """The syslog priority (0 emerg .. 7 debug) for a :mod:`logging` level."""
    if levelno >= logging.CRITICAL:
        return 2
    if levelno >= logging.ERROR:
        return 3
    if levelno >= logging.WARNING:
        return 4
    if levelno >= logging.INFO:
        return 6
    return 7


class RedactingFilter(logging.Filter):
    """Redacts secrets from each record in place (see :func:`redact`); never drops one.

    The message is rendered with its arguments first, so a token passed as ``%s`` argument is
    caught too. Tracebacks are rendered and redacted here as well.
    """

    _formatter = logging.Formatter()

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:
            # A broken format string: leave the record alone so the handler reports it.
            return True
        record.msg = redact(message)
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = self._formatter.formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


class JournalFormatter(logging.Formatter):
    """``<N>logger: message`` lines for journald, the prefix repeated on every line.

    journald splits a stream on newlines and reads a prefix per line; without the repeat, the
    lines of a traceback would be recorded at the default priority.
    """

    def __init__(self) -> None:
        super().__init__("%(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        prefix = f"<{syslog_priority(record.levelno)}>"
        return "\n".join(prefix + line for line in super().format(record).splitlines())


def is_journal_stream(stream: TextIO, env: Mapping[str, str] | None = None) -> bool:
    """Whether ``stream`` is connected to journald (``JOURNAL_STREAM`` names its file).

    Args:
        stream: the stream to check (usually :data:`sys.stderr`).
        env: the environment (default :data:`os.environ`).
    """
    if env is None:
        env = os.environ
    value = env.get("JOURNAL_STREAM", "")
    dev, sep, ino = value.partition(":")
    if not sep:
        return False
    try:
        st = os.fstat(stream.fileno())
        return (st.st_dev, st.st_ino) == (int(dev), int(ino))
    except (OSError, ValueError, AttributeError):
        return False


def configure_logging(
    level: int | str = logging.WARNING,
    *,
    stream: TextIO | None = None,
    env: Mapping[str, str] | None = None,
) -> logging.Handler:
    """Send all logging to ``stream``, formatted for the journal or a terminal, redacted.

    Replaces the root logger's handlers (the daemon owns logging) and routes
    :mod:`warnings` through logging.

    Args:
        level: the root level (``"DEBUG"``, ``logging.INFO``, ...).
        stream: where lines go (default :data:`sys.stderr`).
        env: the environment to read ``JOURNAL_STREAM`` from (default :data:`os.environ`).

    Returns:
        The installed handler.

    Raises:
        ValueError: ``level`` is not a known level name.
    """
    if stream is None:
        stream = sys.stderr
    handler = logging.StreamHandler(stream)
    if is_journal_stream(stream, env):
        handler.setFormatter(JournalFormatter())
    else:
        handler.setFormatter(logging.Formatter(_TTY_FORMAT))
    handler.addFilter(RedactingFilter())
    logging.basicConfig(level=level, handlers=[handler], force=True)
    logging.captureWarnings(True)
    return handler


_LIBRARY_LOGGERS = ("websockets", "websockets.client", "websockets.server")


def redact_library_loggers() -> None:
    """Redact records at the source for libraries that log secrets at DEBUG (idempotent).

    websockets logs every handshake header at DEBUG, ``Authorization`` included. A filter on
    the logger itself runs before the record reaches *any* handler (pytest's, an embedding
    application's), not only ours.
    """
    for name in _LIBRARY_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactingFilter) for f in logger.filters):
            logger.addFilter(RedactingFilter())
