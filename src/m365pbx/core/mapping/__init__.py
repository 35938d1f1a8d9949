"""Presence mappings (both directions, calendar → PBX): rules, overlays, lookups, reasons."""

from m365pbx.core.mapping.document import (
    MappingError,
    find_unreachable_rules,
    parse_mapping_overlay,
    rule_set_to_document,
)
from m365pbx.core.mapping.engine import CompiledMapping, Explanation, TeamsWrite
from m365pbx.core.mapping.rules import (
    DEFAULT_CALENDAR_TO_PBX,
    DEFAULT_RULES,
    CalendarToPbxRule,
    Channel,
    MappingOverlay,
    MappingRuleSet,
    PbxToTeamsRule,
    TeamsToPbxRule,
    apply_overlays,
)

__all__ = [
    "DEFAULT_CALENDAR_TO_PBX",
    "DEFAULT_RULES",
    "CalendarToPbxRule",
    "Channel",
    "CompiledMapping",
    "Explanation",
    "MappingError",
    "MappingOverlay",
    "MappingRuleSet",
    "PbxToTeamsRule",
    "TeamsToPbxRule",
    "TeamsWrite",
    "apply_overlays",
    "find_unreachable_rules",
    "parse_mapping_overlay",
    "rule_set_to_document",
]
