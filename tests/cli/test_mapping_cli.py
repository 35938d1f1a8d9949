from pathlib import Path

import yaml
from typer.testing import CliRunner

from m365pbx.cli.app import app


def test_explain_busy_in_a_call_prints_on_the_phone_and_the_rule(cli: CliRunner) -> None:
    result = cli.invoke(app, ["mapping", "explain", "--availability", "Busy",
                              "--activity", "InACall"])
    assert result.exit_code == 0, result.output
    first, second = result.output.splitlines()[:2]
    assert first == "on-the-phone"
    assert "rule #6" in second and "activity InACall" in second


def test_explain_a_held_line(cli: CliRunner) -> None:
    result = cli.invoke(app, ["mapping", "explain", "--line-state", "held"])
    assert result.exit_code == 0, result.output
    assert "session: Busy/InACall" in result.output
    assert "preferred: nothing" in result.output


def test_explain_rejects_unknown_values_with_exit_2(cli: CliRunner) -> None:
    result = cli.invoke(app, ["mapping", "explain", "--availability", "Bussy"])
    assert result.exit_code == 2
    assert "unknown value 'Bussy'" in result.output


def test_overlay_changes_the_explanation(cli: CliRunner, tmp_path: Path) -> None:
    overlay = tmp_path / "site.yaml"
    overlay.write_text("teams_to_pbx:\n  - {availability: BeRightBack, pbx: online}\n")
    result = cli.invoke(app, ["mapping", "explain", "--availability", "BeRightBack",
                              "--overlay", str(overlay)])
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[0] == "online"
    assert str(overlay) in result.output


def test_export_then_import_round_trips(cli: CliRunner, tmp_path: Path) -> None:
    exported = tmp_path / "rules.yaml"
    result = cli.invoke(app, ["mapping", "export", "--output", str(exported)])
    assert result.exit_code == 0, result.output
    document = yaml.safe_load(exported.read_text())
    assert {"availability": "Busy", "pbx": "busy"} in document["teams_to_pbx"]
    result = cli.invoke(app, ["mapping", "import", str(exported)])
    assert result.exit_code == 0, result.output
    assert ("17 Teams → PBX, 10 PBX → Teams and 4 calendar rules replace the defaults"
            in result.output)


def test_export_json(cli: CliRunner, tmp_path: Path) -> None:
    exported = tmp_path / "rules.json"
    assert cli.invoke(app, ["mapping", "export", "--output", str(exported)]).exit_code == 0
    assert exported.read_text().lstrip().startswith("{")


def test_import_of_a_broken_file_names_every_problem_and_exits_2(
    cli: CliRunner, tmp_path: Path
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "teams_to_pbx:\n  - {availability: Bussy, pbx: busy}\n"
        "pbx_to_teams:\n  - {line_state: held, session: Busy/Busy}\n"
    )
    result = cli.invoke(app, ["mapping", "import", str(bad)])
    assert result.exit_code == 2
    assert "teams_to_pbx[0].availability" in result.output
    assert "pbx_to_teams[0].session" in result.output


def test_yaml_syntax_error_names_the_line(cli: CliRunner, tmp_path: Path) -> None:
    bad = tmp_path / "broken.yaml"
    bad.write_text("teams_to_pbx:\n  - {availability: Busy, pbx: busy\n")
    result = cli.invoke(app, ["mapping", "import", str(bad)])
    assert result.exit_code == 2
    assert "broken.yaml:line" in result.output.replace(" ", "")


def test_show_lists_both_directions(cli: CliRunner) -> None:
    result = cli.invoke(app, ["mapping", "show"])
    assert result.exit_code == 0, result.output
    assert "Teams → PBX" in result.output and "PBX → Teams" in result.output
    assert "UrgentInterruptionsOnly" in result.output


def test_explain_a_calendar_event_and_an_overlay_changing_it(cli: CliRunner,
                                                             tmp_path: Path) -> None:
    result = cli.invoke(app, ["mapping", "explain", "--show-as", "oof"])
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[0] == "away"
    assert "showAs oof → away (default)" in result.output
    overlay = tmp_path / "site.yaml"
    overlay.write_text("calendar_to_pbx:\n  - {show_as: tentative, pbx: busy}\n")
    result = cli.invoke(app, ["mapping", "explain", "--show-as", "tentative",
                              "--overlay", str(overlay)])
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[0] == "busy"
    assert str(overlay) in result.output
    shown = cli.invoke(app, ["mapping", "show", "--overlay", str(overlay)])
    assert "Calendar → PBX" in shown.output and "tentative" in shown.output
    both = cli.invoke(app, ["mapping", "explain", "--show-as", "busy", "--line-state", "held"])
    assert both.exit_code == 2 and "give one of" in both.output
