"""Keys that were accepted and then ignored: now they act as documented, or are refused."""

from __future__ import annotations

from tests.config.conftest import Problems, valid


def test_kind_asterisk_is_refused_at_its_line_until_the_adapter_exists(
    problems: Problems,
) -> None:
    config = valid()
    config["pbx_connections"].append({
        "name": "ami", "kind": "asterisk", "tenant": "contoso",
        "settings": {"host": "pbx", "username": "m365pbx", "secret": "s"}})
    error = problems(config)
    assert len(error.problems) == 1
    problem = error.problems[0]
    assert problem.path == "pbx_connections[1].kind"
    assert problem.source is not None and problem.source.endswith("m365pbx.yaml")
    assert problem.line is not None
    text = str(problem)
    assert "not available yet" in text and "'sip' or 'api'" in text
