"""Matching PBX users with Microsoft users: rules, normalisation, pins, exclusions, reasons."""

from m365pbx.core.matching.eligibility import has_teams_plan, left_out_reason
from m365pbx.core.matching.engine import ProgressCallback, match_users, microsoft_properties
from m365pbx.core.matching.fields import (
    MICROSOFT_FIELDS,
    PHONE_FIELDS,
    STANDARD_PBX_FIELDS,
    read_microsoft_field,
)
from m365pbx.core.matching.normalize import fold_unicode, strip_domain, text_normalizer
from m365pbx.core.matching.options import MatchOptions
from m365pbx.core.matching.phones import PhoneKey, check_phone_region, normalize_phone, phone_key
from m365pbx.core.matching.result import PIN_RULE, Ambiguous, Match, MatchResult, Side, Unmatched
from m365pbx.core.matching.rules import DEFAULT_RULES, Rule, parse_rule
from m365pbx.core.matching.users import PBX_KEY_FIELD, MicrosoftUser, PbxUser

__all__ = [
    "DEFAULT_RULES",
    "MICROSOFT_FIELDS",
    "PBX_KEY_FIELD",
    "PHONE_FIELDS",
    "PIN_RULE",
    "STANDARD_PBX_FIELDS",
    "Ambiguous",
    "Match",
    "MatchOptions",
    "MatchResult",
    "MicrosoftUser",
    "PbxUser",
    "PhoneKey",
    "ProgressCallback",
    "Rule",
    "Side",
    "Unmatched",
    "check_phone_region",
    "fold_unicode",
    "has_teams_plan",
    "left_out_reason",
    "match_users",
    "microsoft_properties",
    "normalize_phone",
    "parse_rule",
    "phone_key",
    "read_microsoft_field",
    "strip_domain",
    "text_normalizer",
]
