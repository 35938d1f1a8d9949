"""Contacts: searchable entries, number keys and the per-person scoped index (pure)."""

from __future__ import annotations

from m365pbx.core.contacts.entry import (
    ContactEntry,
    Phone,
    Source,
    entry,
    fold,
    looks_like_number,
    number_key,
    words_of,
)
from m365pbx.core.contacts.index import (
    EXACT,
    FUZZY,
    PREFIX,
    ContactIndex,
    Hit,
    Lookup,
    SearchPage,
    Viewer,
    within_edits,
)

__all__ = [
    "EXACT",
    "FUZZY",
    "PREFIX",
    "ContactEntry",
    "ContactIndex",
    "Hit",
    "Lookup",
    "Phone",
    "SearchPage",
    "Source",
    "Viewer",
    "entry",
    "fold",
    "looks_like_number",
    "number_key",
    "within_edits",
    "words_of",
]
