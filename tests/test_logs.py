"""Log output: every logger (ours, uvicorn's, Alembic's, MSAL's) in one format, secrets masked."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from m365pbx.logs import configure_logging, settings_secrets
from m365pbx.store import upgrade_database

SECRET = "Zebra-Quokka-S3cret!7"
API_KEY = "mpk_live_4f9a2c7e1b"  # not among the configured secrets: masked by its shape
JWT = "eyJhbGciOiJSUzI1NiJ9.eyJ0aWQiOiJjb250b3NvIn0.c2lnbmF0dXJlLXZhbHVl"


@pytest.fixture
def output() -> Iterator[tuple[io.StringIO, list[logging.Handler]]]:
    """A stream the tests configure logging into; the loggers' levels are restored afterwards."""
    root = logging.getLogger()
    # Earlier tests may have run uvicorn, whose Config sets its loggers' levels (to WARNING in
    # the service): start from inherited levels so every logger's line can reach the stream.
    named = ["uvicorn", "uvicorn.error", "uvicorn.access", "alembic", "msal", "httpx"]
    levels = {name: logging.getLogger(name).level for name in ["", *named]}
    for name in named:
        logging.getLogger(name).setLevel(logging.NOTSET)
    stream = io.StringIO()
    installed: list[logging.Handler] = []
    yield stream, installed
    for handler in installed:
        root.removeHandler(handler)
    for name, level in levels.items():
        logging.getLogger(name).setLevel(level)


def lines_of(stream: io.StringIO) -> list[str]:
    """The lines written so far."""
    return [line for line in stream.getvalue().split("\n") if line]


def log_from_everyone() -> None:
    """One line from m365pbx and from each third-party logger the service runs with."""
    logging.getLogger("m365pbx.sync.hub").warning("write failed for %s", "anna",
                                                  extra={"person": "anna", "attempt": 2})
    logging.getLogger("uvicorn.error").warning("Invalid HTTP request received.")
    logging.getLogger("alembic.runtime.migration").info("Running upgrade  -> 0001")
    logging.getLogger("msal.application").info(
        f"POST /token client_secret={SECRET}&grant_type=client_credentials")
    logging.getLogger("httpx").warning(f"sent Authorization: Bearer {JWT}")
    logging.getLogger("uvicorn.error").info(f"WS /api/v1/stream?key={API_KEY}&connection=office")
    try:
        raise RuntimeError(f"token {JWT} refused")
    except RuntimeError:
        logging.getLogger("m365pbx.graph.client").exception("call failed")


def test_json_format_writes_one_event_per_line_with_fields_for_every_logger(
    output: tuple[io.StringIO, list[logging.Handler]],
) -> None:
    stream, installed = output
    installed.append(configure_logging("INFO", "json", secrets=[SECRET], stream=stream))
    log_from_everyone()
    events = [json.loads(line) for line in lines_of(stream)]  # each line is one JSON event
    assert [e["logger"] for e in events] == [
        "m365pbx.sync.hub", "uvicorn.error", "alembic.runtime.migration", "msal.application",
        "httpx", "uvicorn.error", "m365pbx.graph.client"]
    first = events[0]
    assert first["event"] == "write failed for anna" and first["level"] == "warning"
    assert first["person"] == "anna" and first["attempt"] == 2
    assert first["timestamp"].endswith("Z")
    assert "RuntimeError" in events[-1]["exception"]
    assert SECRET not in stream.getvalue() and JWT not in stream.getvalue()
    assert API_KEY not in stream.getvalue()
    assert "client_secret=********" in events[3]["event"]
    assert events[5]["event"] == "WS /api/v1/stream?key=********&connection=office"


def test_text_format_stays_readable_and_masks_secrets_too(
    output: tuple[io.StringIO, list[logging.Handler]],
) -> None:
    stream, installed = output
    installed.append(configure_logging("INFO", "console", secrets=[SECRET], stream=stream))
    log_from_everyone()
    lines = lines_of(stream)
    assert lines[0].endswith(" WARNING m365pbx.sync.hub: write failed for anna "
                             "person=anna attempt=2")
    assert " INFO alembic.runtime.migration: Running upgrade  -> 0001" in lines[2]
    assert any(line.startswith("Traceback") for line in lines)
    assert SECRET not in stream.getvalue() and JWT not in stream.getvalue()
    assert API_KEY not in stream.getvalue()


def test_the_level_is_applied(output: tuple[io.StringIO, list[logging.Handler]]) -> None:
    stream, installed = output
    installed.append(configure_logging("warning", "json", stream=stream))
    logging.getLogger("m365pbx.x").info("not shown")
    logging.getLogger("m365pbx.x").error("shown")
    assert [json.loads(line)["event"] for line in lines_of(stream)] == ["shown"]


async def test_alembic_lines_of_a_real_migration_are_json(
    output: tuple[io.StringIO, list[logging.Handler]], tmp_path: Path,
) -> None:
    stream, installed = output
    installed.append(configure_logging("INFO", "json", stream=stream))
    await upgrade_database(f"sqlite+aiosqlite:///{tmp_path / 'state.db'}")
    events = [json.loads(line) for line in lines_of(stream)]
    assert any(e["logger"].startswith("alembic") and "upgrade" in e["event"] for e in events)


def test_the_settings_secrets_are_collected_for_masking(tmp_path: Path) -> None:
    from m365pbx.config import load_config

    path = tmp_path / "m365pbx.yaml"
    path.write_text(f"""
database: {{url: "postgresql+asyncpg://m365pbx:Db-Pa55word!x@db/m365pbx"}}
tenants:
  - name: contoso
    tenant_id: contoso.onmicrosoft.com
    credentials:
      - {{name: graph, client_id: 6731de76-14a6-49ae-97bc-6eba6914391e,
         client_secret: "{SECRET}", permissions: [presence.read]}}
""")
    found = settings_secrets(load_config(path, environ={}))
    assert SECRET in found and "Db-Pa55word!x" in found


def test_httpxs_line_per_request_is_kept_for_debug(
    output: tuple[io.StringIO, list[logging.Handler]],
) -> None:
    # At INFO a busy tenant would log every Graph request (thousands a minute).
    stream, installed = output
    installed.append(configure_logging("INFO", "text", secrets=[], stream=stream))
    logging.getLogger("httpx").info("HTTP Request: GET https://graph.microsoft.com/v1.0/users")
    logging.getLogger("httpx").warning("connection pool is full")
    assert [line for line in lines_of(stream) if "HTTP Request" in line] == []
    assert any("connection pool is full" in line for line in lines_of(stream))
    installed.append(configure_logging("DEBUG", "text", secrets=[], stream=stream))
    logging.getLogger("httpx").info("HTTP Request: GET https://graph.microsoft.com/v1.0/users")
    assert any("HTTP Request" in line for line in lines_of(stream))
