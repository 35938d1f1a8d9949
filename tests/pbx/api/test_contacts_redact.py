"""Searched names and looked-up numbers stay out of the web server's logs (docs/contacts.md)."""

from __future__ import annotations

import logging

import pytest

from m365pbx.pbx.api.redact import install_key_redaction, redact_keys


def test_searches_and_numbers_are_masked_in_request_lines() -> None:
    assert redact_keys("/api/v1/contacts?person=anna&q=J%C3%BCrgen%20M&limit=5") == (
        "/api/v1/contacts?person=anna&q=***&limit=5")
    assert redact_keys("/api/v1/lookup?number=%2B49301234567&person=anna") == (
        "/api/v1/lookup?number=***&person=anna")
    assert redact_keys("/api/v1/people?connection=office") == "/api/v1/people?connection=office"
    assert redact_keys("/api/v1/contacts?faq=1") == "/api/v1/contacts?faq=1"


def test_uvicorns_access_line_keeps_no_number(caplog: pytest.LogCaptureFixture) -> None:
    install_key_redaction()
    logger = logging.getLogger("uvicorn.access")
    with caplog.at_level(logging.INFO, logger="uvicorn.access"):
        logger.info('%s - "%s %s HTTP/%s" %d', "127.0.0.1:5000", "GET",
                    "/api/v1/lookup?person=anna&number=030%201234567", "1.1", 200)
    assert "1234567" not in caplog.text
    assert "/api/v1/lookup?person=anna&number=***" in caplog.text
