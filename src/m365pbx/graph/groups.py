"""Group membership: which users are members of a group (for `directory.group_ids`).

`GET /groups/{id}/members` needs the application permission GroupMember.Read.All (or
Group.Read.All, Directory.Read.All); User.Read.All is not enough
(https://learn.microsoft.com/graph/api/group-list-members).
"""

from __future__ import annotations

from urllib.parse import quote

from m365pbx.graph.client import GraphClient
from m365pbx.graph.errors import GraphError

READ_PERMISSION = "GroupMember.Read.All"
"""The least application permission that lists a group's members."""

PAGE_SIZE = "999"


async def group_member_ids(client: GraphClient, group_id: str) -> set[str]:
    """The ids of the users who are direct members of the group (other objects left out)."""
    members: set[str] = set()
    path = f"/v1.0/groups/{quote(group_id, safe='')}/members"
    async for page in client.pages(path, params={"$select": "id", "$top": PAGE_SIZE}):
        for item in page.get("value", []):
            kind = item.get("@odata.type", "#microsoft.graph.user") if isinstance(
                item, dict) else ""
            if kind == "#microsoft.graph.user" and isinstance(item.get("id"), str):
                members.add(item["id"])
    return members


async def memberships(client: GraphClient, group_ids: list[str]) -> dict[str, set[str]]:
    """User id → the ones among `group_ids` the user is a direct member of.

    A failure names the group; a 403 says which permission is missing.
    """
    found: dict[str, set[str]] = {}
    for group_id in group_ids:
        try:
            members = await group_member_ids(client, group_id)
        except GraphError as exc:
            exc.message = f"cannot read the members of group {group_id}: {exc.message}"
            if exc.status == 403:
                exc.hint = (f"Grant the app registration the application permission "
                            f"{READ_PERMISSION} (with admin consent)")
            raise
        for user_id in members:
            found.setdefault(user_id, set()).add(group_id)
    return found
