"""Matching rules `PBXFIELD=MSFIELD`: parsing and validating field names on both sides."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from m365pbx.core.matching.fields import MICROSOFT_FIELDS, STANDARD_PBX_FIELDS
from m365pbx.errors import UserInputError


@dataclass(frozen=True, slots=True)
class Rule:
    """Compare the PBX user's `pbx_field` with the Microsoft user's `microsoft_field`."""

    pbx_field: str
    microsoft_field: str

    def __post_init__(self) -> None:
        if self.microsoft_field not in MICROSOFT_FIELDS:
            raise UserInputError(
                f"unknown Microsoft field {self.microsoft_field!r}; valid names: "
                + ", ".join(MICROSOFT_FIELDS),
                location=f"rule {self.pbx_field}={self.microsoft_field}",
            )
        if not self.pbx_field:
            raise UserInputError("the PBX field name is empty", location=f"rule {self}")

    def __str__(self) -> str:
        return f"{self.pbx_field}={self.microsoft_field}"


# innovaphone's connector matches the PBX long name with the Entra ID display name by default.
DEFAULT_RULES: tuple[Rule, ...] = (Rule("cn", "displayName"),)


def _resolve(name: str, valid: Collection[str]) -> str | None:
    if name in valid:
        return name
    folded = {candidate.casefold(): candidate for candidate in valid}
    return folded.get(name.casefold())


def parse_rule(text: str, pbx_fields: Collection[str] | None = None) -> Rule:
    """Parse `PBXFIELD=MSFIELD`; field names are checked case-insensitively.

    `pbx_fields` are the PBX field names that exist (the file's columns); when omitted the
    standard PBX fields are accepted and any other name is taken as a custom field.
    """
    pbx_name, equals, microsoft_name = text.partition("=")
    pbx_name, microsoft_name = pbx_name.strip(), microsoft_name.strip()
    if not equals or not pbx_name or not microsoft_name:
        raise UserInputError(
            "a rule is written PBXFIELD=MSFIELD, for example cn=displayName",
            location=f"rule {text!r}",
        )
    microsoft_field = _resolve(microsoft_name, MICROSOFT_FIELDS)
    if microsoft_field is None:
        raise UserInputError(
            f"unknown Microsoft field {microsoft_name!r}; valid names: "
            + ", ".join(MICROSOFT_FIELDS),
            location=f"rule {text!r}",
        )
    known_pbx_fields = list(STANDARD_PBX_FIELDS) if pbx_fields is None else list(pbx_fields)
    pbx_field = _resolve(pbx_name, known_pbx_fields)
    if pbx_field is None:
        if pbx_fields is None:
            pbx_field = pbx_name
        else:
            raise UserInputError(
                f"unknown PBX field {pbx_name!r}; valid names (the PBX file's columns): "
                + ", ".join(known_pbx_fields),
                location=f"rule {text!r}",
            )
    return Rule(pbx_field, microsoft_field)
