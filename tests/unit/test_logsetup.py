"""Logging set-up: journald priority prefixes, terminal format, and redaction at every level."""

from __future__ import annotations

import base64
import io
import logging
import os
import re
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

import pytest

from voicegw.logsetup import (
    JournalFormatter,
    RedactingFilter,
    configure_logging,
    is_journal_stream,
    redact,
    syslog_priority,
)

PAT = "pat_" + "Ab3" * 21  # the shape of a Coze personal access token
SAT = "sat_" + "Zx9" * 21
AUDIO_B64 = base64.b64encode(bytes(range(256)) * 4).decode()  # 1368 characters


@pytest.fixture(autouse=True)
def restore_root_logger() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    for h in root.handlers:
        if h not in handlers:
            h.close()
    root.handlers[:] = handlers
    root.setLevel(level)
    logging.captureWarnings(False)


def journal_env(stream: TextIO) -> dict[str, str]:
    st = os.fstat(stream.fileno())
    return {"JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}"}


def log_lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines()


# ---------------------------------------------------------------- journald


def test_journal_stream_detection(tmp_path: Path) -> None:
    with open(tmp_path / "a", "w") as a, open(tmp_path / "b", "w") as b:
        env = journal_env(a)
        assert is_journal_stream(a, env)
        assert not is_journal_stream(b, env)
        assert not is_journal_stream(a, {})
        assert not is_journal_stream(a, {"JOURNAL_STREAM": "garbage"})
        assert not is_journal_stream(a, {"JOURNAL_STREAM": "1:x"})
    assert not is_journal_stream(io.StringIO(), env)  # no file descriptor


@pytest.mark.parametrize(
    ("level", "priority"),
    [
        (logging.DEBUG, 7),
        (logging.INFO, 6),
        (logging.WARNING, 4),
        (logging.ERROR, 3),
        (logging.CRITICAL, 2),
        (logging.INFO + 5, 6),
        (5, 7),
    ],
)
def test_syslog_priorities(level: int, priority: int) -> None:
    assert syslog_priority(level) == priority


def test_journal_lines_carry_priority_prefixes_and_no_timestamps(tmp_path: Path) -> None:
    path = tmp_path / "stderr"
    with open(path, "w", encoding="utf-8") as stream:
        handler = configure_logging("DEBUG", stream=stream, env=journal_env(stream))
        assert isinstance(handler.formatter, JournalFormatter)
        log = logging.getLogger("voicegw.test")
        log.debug("d")
        log.info("i")
        log.warning("w")
        log.error("e")
        log.critical("c")
        stream.flush()
    assert log_lines(path) == [
        "<7>voicegw.test: d",
        "<6>voicegw.test: i",
        "<4>voicegw.test: w",
        "<3>voicegw.test: e",
        "<2>voicegw.test: c",
    ]


def test_every_line_of_a_traceback_keeps_the_priority(tmp_path: Path) -> None:
    path = tmp_path / "stderr"
    with open(path, "w", encoding="utf-8") as stream:
        configure_logging("INFO", stream=stream, env=journal_env(stream))
        try:
            raise RuntimeError("boom\nsecond line")
        except RuntimeError:
            logging.getLogger("voicegw.test").exception("failed")
        stream.flush()
    lines = log_lines(path)
    assert lines[0] == "<3>voicegw.test: failed"
    assert len(lines) > 3
    assert all(line.startswith("<3>") for line in lines)
    assert "<3>RuntimeError: boom" in lines


def test_terminal_lines_have_timestamp_and_level(tmp_path: Path) -> None:
    path = tmp_path / "stderr"
    with open(path, "w", encoding="utf-8") as stream:
        configure_logging(logging.INFO, stream=stream, env={})
        logging.getLogger("voicegw.test").info("hello")
        logging.getLogger("voicegw.test").debug("not shown")
        stream.flush()
    (line,) = log_lines(path)
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} INFO    voicegw\.test: hello", line)


def test_warnings_go_through_logging(tmp_path: Path) -> None:
    path = tmp_path / "stderr"
    with open(path, "w", encoding="utf-8") as stream:
        configure_logging("WARNING", stream=stream, env=journal_env(stream))
        with warnings.catch_warnings():
            warnings.simplefilter("always")
            warnings.warn("careful", UserWarning, stacklevel=1)
        stream.flush()
    assert log_lines(path)[0].startswith("<4>py.warnings: ")


def test_unknown_level_is_refused() -> None:
    with pytest.raises(ValueError):
        configure_logging("LOUD", stream=io.StringIO(), env={})


# ---------------------------------------------------------------- redaction


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (f"token {PAT} used", "token pat_<redacted> used"),
        (f"token={SAT}", "token=sat_<redacted>"),
        ("czs_" + "q" * 40, "czs_<redacted>"),
        ("pat_test-token_123 rejected", "pat_<redacted> rejected"),
        ("Authorization: Bearer abc.def-ghi", "Authorization: Bearer <redacted>"),
        ("{'Authorization': 'Bearer xyz'}", "{'Authorization': 'Bearer <redacted>'}"),
        ("bearer  s3cr3t, next", "bearer <redacted>, next"),
        (
            "jwt eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.c2lnbmF0dXJlX2hlcmU end",
            "jwt <jwt redacted> end",
        ),
        (f'{{"delta": "{AUDIO_B64}"}}', '{"delta": "<base64 redacted, 1368 chars>"}'),
        ("A" * 120, "<base64 redacted, 120 chars>"),  # base64 of digital silence
    ],
)
def test_redact_removes_secrets(text: str, expected: str) -> None:
    assert redact(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "connected to wss://ws.coze.cn/v1/chat?bot_id=7496347519799787557",
        "compat_mode_enabled_for_this_particular_device",
        "sha256 " + "0123456789abcdef" * 4,
        "pat_short",
        "File /work/main/.venv/lib/python3.11/site-packages/websockets/asyncio/connection.py",
        "delta " + "QUJD" * 20,  # a short, truncated base64 preview stays readable
        "> audio.append 640B",
    ],
)
def test_redact_leaves_ordinary_text_alone(text: str) -> None:
    assert redact(text) == text


def test_debug_records_are_redacted_in_message_args_and_traceback(tmp_path: Path) -> None:
    path = tmp_path / "stderr"
    with open(path, "w", encoding="utf-8") as stream:
        configure_logging("DEBUG", stream=stream, env={})
        log = logging.getLogger("voicegw.test")
        log.debug("headers %s", {"Authorization": f"Bearer {PAT}"})
        log.debug("token %s and %s", PAT, SAT)
        log.debug("< audio.delta %s", AUDIO_B64)
        try:
            raise ValueError(f"refused {PAT}")
        except ValueError:
            log.debug("handshake failed", exc_info=True)
        log.debug("stack", stack_info=True, extra={"secret": PAT})
        stream.flush()
    text = path.read_text(encoding="utf-8")
    assert PAT[4:] not in text and SAT[4:] not in text
    assert AUDIO_B64[:100] not in text
    assert "Bearer <redacted>" in text
    assert "token pat_<redacted> and sat_<redacted>" in text
    assert "ValueError: refused pat_<redacted>" in text
    assert "<base64 redacted, 1368 chars>" in text


def test_redaction_reaches_other_handlers_of_the_same_record(tmp_path: Path) -> None:
    """The filter rewrites the record itself, so a second handler sees the redacted text."""
    configure_logging("DEBUG", stream=io.StringIO(), env={})
    other = io.StringIO()
    logging.getLogger().addHandler(logging.StreamHandler(other))
    root_handler = logging.getLogger().handlers[0]
    assert any(isinstance(f, RedactingFilter) for f in root_handler.filters)
    logging.getLogger("voicegw.test").warning("got %s", PAT)
    assert other.getvalue() == "got pat_<redacted>\n"


def test_a_broken_format_string_is_left_to_the_handler() -> None:
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "%d", ("not a number",), None)
    assert RedactingFilter().filter(record)
    assert record.msg == "%d" and record.args == ("not a number",)
