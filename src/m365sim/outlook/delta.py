"""`contact: delta` for one contact folder (api-reference/v1.0/api/contact-delta.md).

A round starts without a token (every contact in the folder) or with the `$deltatoken` of
the previous round (only what changed since: current state of changed contacts, and
`{"id", "@removed": {"reason": "deleted"}}` for deleted ones). Pages are linked with
`$skiptoken`; the last page carries `@odata.deltaLink`. Query options given in the first
request (`$select`, `Prefer: odata.maxpagesize`) are kept inside the tokens, as Graph does.

Tokens are opaque to clients; here they are base64url JSON holding the folder, the change
sequence numbers the round covers, and a cursor (version, id) so that a contact changing
mid-round cannot shift the remaining pages.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from typing import Any

from m365sim.errors import GraphError
from m365sim.outlook.model import Mailbox
from m365sim.outlook.render import contact_json, project


@dataclass(frozen=True)
class DeltaState:
    """Where a delta round stands."""

    folder_id: str
    since: int
    upto: int
    after: tuple[int, str] | None
    select: list[str] | None
    page_size: int


def encode(state: DeltaState) -> str:
    """The opaque token for a state."""
    raw = {"f": state.folder_id, "s": state.since, "u": state.upto,
           "a": list(state.after) if state.after else None, "sel": state.select,
           "p": state.page_size}
    return base64.urlsafe_b64encode(json.dumps(raw, separators=(",", ":")).encode()).decode()


def decode(token: str, folder_id: str) -> DeltaState:
    """A state from a token; 400 if it is not one of ours or names another folder."""
    try:
        raw = json.loads(base64.urlsafe_b64decode(token.encode() + b"=" * (-len(token) % 4)))
        after = raw["a"]
        state = DeltaState(str(raw["f"]), int(raw["s"]), int(raw["u"]),
                           (int(after[0]), str(after[1])) if after else None,
                           list(raw["sel"]) if raw["sel"] is not None else None, int(raw["p"]))
    except (ValueError, KeyError, TypeError, IndexError, binascii.Error):
        raise GraphError(400, "ErrorInvalidSyncStateData",
                         "The sync state data is corrupt or otherwise invalid.") from None
    if state.folder_id != folder_id:
        raise GraphError(400, "ErrorInvalidSyncStateData",
                         "The sync state data is corrupt or otherwise invalid.")
    return state


def first_round(mailbox: Mailbox, folder_id: str, select: list[str] | None,
                page_size: int) -> DeltaState:
    """The state of a round started without a token."""
    return DeltaState(folder_id, 0, mailbox.contact_version, None, select, page_size)


def next_round(mailbox: Mailbox, previous: DeltaState) -> DeltaState:
    """The state of a round started with a delta token."""
    return DeltaState(previous.folder_id, previous.since, mailbox.contact_version, None,
                      previous.select, previous.page_size)


def changes(mailbox: Mailbox, state: DeltaState) -> tuple[list[dict[str, Any]], DeltaState,
                                                          bool]:
    """(items of this page, state for the next link, whether the round is complete)."""
    found: list[tuple[int, str, dict[str, Any]]] = []
    for contact in mailbox.contacts.values():
        if contact.folder_id == state.folder_id and state.since < contact.version <= state.upto:
            item = {"@odata.type": "#microsoft.graph.contact",
                    **project(contact_json(contact), state.select)}
            found.append((contact.version, contact.id, item))
    if state.since > 0:
        for tomb in mailbox.tombstones:
            if tomb.folder_id == state.folder_id and state.since < tomb.version <= state.upto:
                found.append((tomb.version, tomb.id, {"@odata.type": "#microsoft.graph.contact",
                                                      "id": tomb.id,
                                                      "@removed": {"reason": "deleted"}}))
    found.sort(key=lambda entry: (entry[0], entry[1]))
    if state.after is not None:
        found = [f for f in found if (f[0], f[1]) > state.after]
    chosen = found[:state.page_size]
    if len(found) > len(chosen):
        last = chosen[-1]
        return [c[2] for c in chosen], DeltaState(
            state.folder_id, state.since, state.upto, (last[0], last[1]), state.select,
            state.page_size), False
    done = DeltaState(state.folder_id, state.upto, state.upto, None, state.select,
                      state.page_size)
    return [c[2] for c in chosen], done, True
