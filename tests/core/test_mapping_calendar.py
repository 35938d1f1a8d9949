"""The calendar rule set of the mapping document (`calendar_to_pbx`), issue 22."""

from __future__ import annotations

import pytest

from m365pbx.core.mapping import (
    DEFAULT_RULES,
    CompiledMapping,
    MappingError,
    apply_overlays,
    parse_mapping_overlay,
    rule_set_to_document,
)
from m365pbx.core.presence import PbxPresence, ShowAs

DEFAULTS = CompiledMapping(DEFAULT_RULES)


def test_defaults_meetings_show_meeting_out_of_office_and_elsewhere_away() -> None:
    assert {show_as: DEFAULTS.calendar_to_pbx(show_as) for show_as in ShowAs} == {
        ShowAs.BUSY: PbxPresence.MEETING, ShowAs.TENTATIVE: PbxPresence.MEETING,
        ShowAs.OOF: PbxPresence.AWAY, ShowAs.WORKING_ELSEWHERE: PbxPresence.AWAY,
        ShowAs.FREE: PbxPresence.ONLINE, ShowAs.UNKNOWN: PbxPresence.ONLINE}


def test_an_overlay_rule_replaces_the_default_in_place_and_is_explained() -> None:
    overlay = parse_mapping_overlay(
        {"calendar_to_pbx": [{"show_as": "Tentative", "pbx": "busy"}]}, source="site.yaml")
    compiled = CompiledMapping(apply_overlays(DEFAULT_RULES, overlay))
    assert compiled.calendar_to_pbx(ShowAs.TENTATIVE) is PbxPresence.BUSY
    assert compiled.calendar_to_pbx(ShowAs.BUSY) is PbxPresence.MEETING
    reason = compiled.explain_calendar(ShowAs.TENTATIVE).reason
    assert reason == ("rule #2 (showAs tentative → busy (site.yaml)) decides calendar events "
                      "shown as tentative")
    assert "no rule matches" in DEFAULTS.explain_calendar(ShowAs.FREE).reason


def test_the_teams_rules_no_longer_change_calendar_meetings() -> None:
    overlay = parse_mapping_overlay({"teams_to_pbx": [{"activity": "InAMeeting", "pbx": "busy"}]})
    compiled = CompiledMapping(apply_overlays(DEFAULT_RULES, overlay))
    assert compiled.calendar_to_pbx(ShowAs.BUSY) is PbxPresence.MEETING


def test_bad_calendar_rules_name_every_problem() -> None:
    with pytest.raises(MappingError) as caught:
        parse_mapping_overlay({"calendar_to_pbx": [
            {"show_as": "bussy", "pbx": "meeting"},
            {"show_as": "free", "pbx": "busy"},
            {"show_as": "busy"},
            {"show_as": "oof", "pbx": "away", "note": "x"},
        ]})
    problems = caught.value.problems
    assert any("calendar_to_pbx[0].show_as: unknown value 'bussy'" in p
               and "did you mean 'busy'" in p for p in problems), problems
    assert any("calendar_to_pbx[1].show_as: free events never show" in p for p in problems)
    assert any("calendar_to_pbx[2]: missing key 'pbx'" in p for p in problems)
    assert any("calendar_to_pbx[3].note: unknown key" in p for p in problems)
    with pytest.raises(MappingError, match=r"calendar_to_pbx\[1\] conflicts with"):
        parse_mapping_overlay({"calendar_to_pbx": [{"show_as": "oof", "pbx": "away"},
                                                   {"show_as": "OOF", "pbx": "dnd"}]})


def test_replace_without_calendar_rules_keeps_the_calendar_defaults() -> None:
    # A document exported before calendar rules existed: replacing must not switch them off.
    overlay = parse_mapping_overlay({"replace": True, "teams_to_pbx": [
        {"availability": "Busy", "pbx": "busy"}]})
    merged = apply_overlays(DEFAULT_RULES, overlay)
    assert merged.calendar_to_pbx == DEFAULT_RULES.calendar_to_pbx
    only = parse_mapping_overlay({"replace": True, "calendar_to_pbx": [
        {"show_as": "oof", "pbx": "dnd"}]})
    compiled = CompiledMapping(apply_overlays(DEFAULT_RULES, only))
    assert compiled.calendar_to_pbx(ShowAs.OOF) is PbxPresence.DND
    assert compiled.calendar_to_pbx(ShowAs.BUSY) is PbxPresence.ONLINE


def test_export_and_read_back_keeps_the_calendar_rules() -> None:
    overlay = parse_mapping_overlay({"calendar_to_pbx": [
        {"show_as": "workingElsewhere", "pbx": "online"}]})
    merged = apply_overlays(DEFAULT_RULES, overlay)
    document = rule_set_to_document(merged)
    assert {"show_as": "workingElsewhere", "pbx": "online"} in document["calendar_to_pbx"]
    again = apply_overlays(DEFAULT_RULES, parse_mapping_overlay(document))
    assert again == merged
