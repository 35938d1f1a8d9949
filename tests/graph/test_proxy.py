"""One proxy decision for sign-in and Graph: the configured proxy, HTTPS_PROXY, NO_PROXY."""

from __future__ import annotations

import pytest

from m365pbx.graph.proxy import ProxyChoice

LOGIN = "https://login.microsoftonline.com/contoso.com/oauth2/v2.0/token"
GRAPH = "https://graph.microsoft.com/v1.0/users"


def test_the_configured_proxy_wins_over_the_environment() -> None:
    choice = ProxyChoice.from_environment("http://configured:3128",
                                          {"HTTPS_PROXY": "http://env:8080"})
    assert choice.for_url(LOGIN) == choice.for_url(GRAPH) == "http://configured:3128"


def test_https_proxy_in_either_case_and_without_a_scheme() -> None:
    assert ProxyChoice.from_environment(None, {"https_proxy": "env:8080"}).for_url(
        GRAPH) == "http://env:8080"
    assert ProxyChoice.from_environment(None, {"HTTPS_PROXY": "http://env:8080"}).for_url(
        LOGIN) == "http://env:8080"
    assert ProxyChoice.from_environment(None, {}).for_url(GRAPH) is None


@pytest.mark.parametrize(("no_proxy", "url", "direct"), [
    ("*", GRAPH, True),
    ("graph.microsoft.com", GRAPH, True),
    ("microsoft.com", GRAPH, True),
    (".microsoftonline.com", LOGIN, True),
    (".microsoft.com", LOGIN, False),
    ("soft.com", GRAPH, False),
    ("127.0.0.1", "https://127.0.0.1:8443/v1.0/users", True),
    ("127.0.0.0/8", "https://127.0.0.1:8443/v1.0/users", True),
    ("10.0.0.0/8", "https://127.0.0.1:8443/v1.0/users", False),
    ("::1", "https://[::1]:8443/x", True),
    ("[::1]:8443", "https://[::1]:8443/x", True),
    ("localhost:9999", "https://localhost:8443/x", False),
    ("localhost:8443", "https://localhost:8443/x", True),
    ("example.com, graph.microsoft.com", GRAPH, True),
])
def test_no_proxy_follows_curl(no_proxy: str, url: str, direct: bool) -> None:
    choice = ProxyChoice.from_environment("http://proxy:3128", {"NO_PROXY": no_proxy})
    assert (choice.for_url(url) is None) is direct


def test_the_password_of_a_proxy_never_shows() -> None:
    choice = ProxyChoice.from_environment("http://user:s3cret@proxy:3128", {})
    assert "s3cret" not in choice.describe() and "s3cret" not in repr(choice)
    assert choice.describe() == "http://proxy:3128"
