"""API keys never reach the server's logs, even when sent in the stream's query string."""

from __future__ import annotations

import logging

import pytest

from m365pbx.pbx.api.keys import generate_api_key
from m365pbx.pbx.api.redact import KeyRedactingFilter, install_key_redaction, redact_keys


def test_key_parameters_and_key_shapes_are_masked() -> None:
    key = generate_api_key().key
    assert redact_keys(f"/api/v1/stream?connection=office&key={key}") == (
        "/api/v1/stream?connection=office&key=***"
    )
    assert redact_keys(f"/api/v1/stream?KEY={key}&connection=x") == (
        "/api/v1/stream?KEY=***&connection=x"
    )
    assert redact_keys(f"token {key} leaked") == "token *** leaked"
    assert redact_keys("/api/v1/people?monkey=1") == "/api/v1/people?monkey=1"


def test_uvicorns_websocket_line_is_masked(caplog: pytest.LogCaptureFixture) -> None:
    key = generate_api_key().key
    install_key_redaction()
    install_key_redaction()  # once is enough; twice adds nothing
    logger = logging.getLogger("uvicorn.error")
    assert sum(isinstance(f, KeyRedactingFilter) for f in logger.filters) == 1
    with caplog.at_level(logging.INFO, logger="uvicorn.error"):
        logger.info('%s - "WebSocket %s" [accepted]', "127.0.0.1:5000",
                    f"/api/v1/stream?key={key}")
    assert key not in caplog.text
    assert "/api/v1/stream?key=***" in caplog.text


def test_dict_arguments_are_masked_too() -> None:
    key = generate_api_key().key
    record = logging.LogRecord("uvicorn.access", logging.INFO, __file__, 1, "%(path)s",
                               None, None)
    record.args = {"path": f"/x?key={key}"}
    assert KeyRedactingFilter().filter(record)
    assert record.getMessage() == "/x?key=***"
