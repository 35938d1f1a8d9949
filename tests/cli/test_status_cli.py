"""`m365pbx status`: what counts as not ok (stale records, stopped and superseded nodes)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from typer.testing import CliRunner

from m365pbx.cli.app import app
from m365pbx.cli.status import report
from m365pbx.core.status import PartState, PartStatus

NOW = datetime(2026, 12, 6, 9, 0, tzinfo=UTC)


def status(node: str, part: str, state: PartState, written: datetime,
           kind: str = "pbx_connection") -> PartStatus:
    return PartStatus(part, kind, state, written, node=node, written_at=written)


def test_a_record_its_node_stopped_refreshing_is_stale_and_not_ok() -> None:
    old = NOW - timedelta(minutes=10)
    found = report([status("a", "pbx/sip", PartState.OK, old)], NOW, stale_after=180)
    assert found["ok"] is False and found["parts"][0]["stale"] is True
    fresh = report([status("a", "pbx/sip", PartState.OK, NOW)], NOW, stale_after=180)
    assert fresh["ok"] is True


def test_a_stopped_node_is_not_ok_unless_a_running_node_wrote_after_it() -> None:
    before = NOW - timedelta(hours=1)
    old_node = [status("old", "service", PartState.STOPPED, before, kind="service"),
                status("old", "pbx/sip", PartState.ERROR, before)]
    alone = report(old_node, NOW)
    assert alone["ok"] is False and not any(p["stale"] for p in alone["parts"])
    new_node = [status("new", "service", PartState.OK, NOW, kind="service"),
                status("new", "pbx/sip", PartState.OK, NOW)]
    both = report(old_node + new_node, NOW)
    assert both["ok"] is True
    assert [p["superseded"] for p in both["parts"]] == [True, True, False, False]


def test_nothing_recorded_is_not_ok(tmp_path: Path) -> None:
    assert report([], NOW)["ok"] is False


def test_a_missing_database_is_refused_with_what_to_run(tmp_path: Path) -> None:
    config = tmp_path / "m365pbx.yaml"
    config.write_text(f"database:\n  url: sqlite+aiosqlite:///{tmp_path / 'state.db'}\n"
                      f"secrets:\n  key_file: {tmp_path / 'secret.key'}\n")
    result = CliRunner().invoke(app, ["status", "--config", str(config)])
    assert result.exit_code == 1
    assert "no database" in result.stderr and "m365pbx serve" in result.stderr
    assert not (tmp_path / "state.db").exists()
