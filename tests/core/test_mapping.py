from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from m365pbx.core.mapping import (
    DEFAULT_RULES,
    Channel,
    CompiledMapping,
    MappingError,
    apply_overlays,
    parse_mapping_overlay,
    rule_set_to_document,
)
from m365pbx.core.presence import (
    Activity,
    Availability,
    LineState,
    PbxPresence,
    TeamsPresence,
    parse_teams_presence,
)

DEFAULTS = CompiledMapping(DEFAULT_RULES)

# The innovaphone table from docs/mapping.md, value by value. Values that are
# an availability are paired with their own activity, activity-only values with Busy.
INNOVAPHONE_TABLE = {
    ("Away", "Away"): "away",
    ("BeRightBack", "BeRightBack"): "away",
    ("Busy", "Busy"): "busy",
    ("DoNotDisturb", "DoNotDisturb"): "dnd",
    ("Busy", "InACall"): "on-the-phone",
    ("Busy", "InAMeeting"): "meeting",
    ("Available", "Inactive"): "online",
    ("PresenceUnknown", "PresenceUnknown"): "online",
    ("Available", "Available"): "online",
    ("Offline", "Offline"): "online",
    ("Offline", "OffWork"): "online",
    ("Available", "OutOfOffice"): "away",
    ("DoNotDisturb", "UrgentInterruptionsOnly"): "dnd",
    ("DoNotDisturb", "Presenting"): "on-the-phone",
    ("Busy", "InAConferenceCall"): "on-the-phone",
    ("AvailableIdle", "Available"): "online",
    ("BusyIdle", "Busy"): "busy",
}


@pytest.mark.parametrize(("teams", "pbx"), INNOVAPHONE_TABLE.items())
def test_default_table_is_the_innovaphone_table(teams: tuple[str, str], pbx: str) -> None:
    assert DEFAULTS.to_pbx(parse_teams_presence(*teams)).value == pbx


def test_explain_names_the_deciding_rule_and_the_beaten_one() -> None:
    explanation = DEFAULTS.explain_teams(TeamsPresence(Availability.BUSY, Activity.IN_A_CALL))
    assert explanation.winner is not None
    assert explanation.winner.pbx is PbxPresence.ON_THE_PHONE
    assert "activity InACall" in explanation.reason
    assert "availability Busy → busy" in explanation.reason
    assert "less specific" in explanation.reason


def test_unknown_new_activity_falls_back_to_its_availability() -> None:
    presence = parse_teams_presence("DoNotDisturb", "DeepWork")
    assert DEFAULTS.to_pbx(presence) is PbxPresence.DND


def test_default_pbx_to_teams_calls_become_in_a_call_sessions() -> None:
    for line in (LineState.ON_THE_PHONE, LineState.HELD):
        write = DEFAULTS.to_teams(Channel.SESSION, line, PbxPresence.ONLINE)
        assert write.presence == TeamsPresence(Availability.BUSY, Activity.IN_A_CALL)
    for line in (LineState.IDLE, LineState.RINGING):
        assert DEFAULTS.to_teams(Channel.SESSION, line, PbxPresence.ONLINE).presence is None


@pytest.mark.parametrize(
    ("pbx", "teams", "days"),
    [
        (PbxPresence.AWAY, "Away/Away", 7),
        (PbxPresence.BUSY, "Busy/Busy", 1),
        (PbxPresence.DND, "DoNotDisturb/DoNotDisturb", 1),
        (PbxPresence.ON_THE_PHONE, "Busy/Busy", 1),
    ],
)
def test_default_pbx_presence_becomes_preferred_presence(
    pbx: PbxPresence, teams: str, days: int
) -> None:
    write = DEFAULTS.to_teams(Channel.PREFERRED, LineState.IDLE, pbx)
    assert str(write.presence) == teams
    assert write.lifetime_seconds == timedelta(days=days).total_seconds()


def test_meeting_and_online_write_no_preferred_presence() -> None:
    for pbx in (PbxPresence.MEETING, PbxPresence.ONLINE):
        assert DEFAULTS.to_teams(Channel.PREFERRED, LineState.IDLE, pbx).presence is None


def test_connection_overlay_beats_tenant_overlay_beats_defaults() -> None:
    tenant = parse_mapping_overlay(
        {"teams_to_pbx": [{"availability": "BeRightBack", "pbx": "busy"}]}, source="tenant"
    )
    connection = parse_mapping_overlay(
        {
            "teams_to_pbx": [{"availability": "berightback", "pbx": "online"}],
            "pbx_to_teams": [{"line_state": "ringing", "session": "Busy/InACall"}],
        },
        source="connection sip1",
    )
    compiled = CompiledMapping(apply_overlays(DEFAULT_RULES, tenant, connection))
    brb = TeamsPresence(Availability.BE_RIGHT_BACK, Activity.BE_RIGHT_BACK)
    assert compiled.to_pbx(brb) is PbxPresence.ONLINE
    assert "connection sip1" in compiled.explain_teams(brb).reason
    ringing = compiled.to_teams(Channel.SESSION, LineState.RINGING, PbxPresence.ONLINE)
    assert str(ringing.presence) == "Busy/InACall"
    # Everything the overlays did not mention keeps the default.
    assert compiled.to_pbx(TeamsPresence(Availability.AWAY, Activity.AWAY)) is PbxPresence.AWAY
    assert len(compiled.rules.teams_to_pbx) == len(DEFAULT_RULES.teams_to_pbx)


def test_replace_overlay_discards_the_defaults() -> None:
    overlay = parse_mapping_overlay(
        {"replace": True, "teams_to_pbx": [{"availability": "Busy", "pbx": "busy"}]}
    )
    compiled = CompiledMapping(apply_overlays(DEFAULT_RULES, overlay))
    assert compiled.to_pbx(TeamsPresence(Availability.AWAY, Activity.AWAY)) is PbxPresence.ONLINE
    assert "no rule matches" in compiled.explain_teams(
        TeamsPresence(Availability.AWAY, Activity.AWAY)
    ).reason


def test_export_then_import_gives_the_same_rules() -> None:
    document = rule_set_to_document(DEFAULT_RULES)
    assert apply_overlays(DEFAULT_RULES, parse_mapping_overlay(document)) == DEFAULT_RULES


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        ({"teams_to_pbx": [{"availability": "Bussy", "pbx": "busy"}]}, "did you mean 'Busy'"),
        ({"teams_to_pbx": [{"activity": "InACall", "pbx": "phoning"}]}, "unknown value 'phoning'"),
        ({"teams_to_pbx": [{"availability": "Busy"}]}, "missing key 'pbx'"),
        ({"teams_to_pbx": [{"availability": "Busy", "pbx": "busy", "colour": 1}]}, "unknown key"),
        ({"teams_to_pbx": "Busy=busy"}, "expected a list of rules"),
        ({"pbx_to_teams": [{"line_state": "held", "session": "Busy/Busy"}]}, "does not accept"),
        ({"pbx_to_teams": [{"pbx_presence": "away", "preferred": "Busy/InACall"}]}, "not accept"),
        (
            {"pbx_to_teams": [{"line_state": "held", "session": "Busy/InACall", "lifetime": "8h"}]},
            "5m to 4h",
        ),
        ({"pbx_to_teams": [{"pbx_presence": "away", "preferred": "x", "lifetime": "soon"}]},
         "not a duration"),
        ({"pbx_to_teams": [{"line_state": "held"}]}, "exactly one of 'session' or 'preferred'"),
        ({"tems_to_pbx": []}, "did you mean 'teams_to_pbx'"),
        (["Busy"], "expected a mapping"),
    ],
)
def test_invalid_documents_name_the_problem(document: object, expected: str) -> None:
    with pytest.raises(MappingError) as caught:
        parse_mapping_overlay(document, source="site.yaml")
    assert expected in str(caught.value)
    assert str(caught.value).startswith("site.yaml: ")


def test_conflicting_rules_are_refused() -> None:
    with pytest.raises(MappingError, match=r"teams_to_pbx\[1\] conflicts with teams_to_pbx\[0\]"):
        parse_mapping_overlay(
            {
                "teams_to_pbx": [
                    {"availability": "Busy", "pbx": "busy"},
                    {"availability": "busy", "pbx": "dnd"},
                ]
            }
        )


def test_duplicate_rule_can_never_match() -> None:
    with pytest.raises(MappingError, match="can never match"):
        parse_mapping_overlay(
            {"teams_to_pbx": [{"activity": "InACall", "pbx": "busy"}] * 2}
        )


def test_rule_shadowed_by_more_specific_rules_can_never_match() -> None:
    # Every line state has its own session rule, so a rule on PBX presence alone never wins.
    rules = [{"line_state": state.value, "session": "nothing"} for state in LineState]
    rules.append({"pbx_presence": "dnd", "session": "DoNotDisturb/Presenting"})
    with pytest.raises(MappingError, match=r"pbx_to_teams\[4\].*can never match"):
        parse_mapping_overlay({"pbx_to_teams": rules})


def test_every_problem_is_reported_at_once() -> None:
    with pytest.raises(MappingError) as caught:
        parse_mapping_overlay(
            {
                "teams_to_pbx": [{"availability": "Nope", "pbx": "busy"}],
                "pbx_to_teams": [{"line_state": "dialing", "session": "nothing"}],
            }
        )
    assert len(caught.value.problems) == 2


@given(st.sampled_from(list(Availability)), st.sampled_from(list(Activity)))
def test_lookup_agrees_with_explanation(availability: Availability, activity: Activity) -> None:
    presence = TeamsPresence(availability, activity)
    explanation = DEFAULTS.explain_teams(presence)
    expected = explanation.winner.pbx if explanation.winner else PbxPresence.ONLINE
    assert DEFAULTS.to_pbx(presence) is expected
