"""Microsoft users in a fixed order, with value indexes per field and id/UPN lookup."""

from __future__ import annotations

from collections.abc import Iterable

from m365pbx.core.matching.fields import MICROSOFT_FIELD_READERS, field_columns
from m365pbx.core.matching.normalize import ManyNormalizer
from m365pbx.core.matching.users import MicrosoftUser
from m365pbx.errors import UserInputError

# Normalised value -> positions (in `MicrosoftDirectory.users`) of the users that have it.
ValueIndex = dict[str, list[int]]


class MicrosoftDirectory:
    """The Microsoft users sorted by id, so that results never depend on input order."""

    def __init__(self, users: Iterable[MicrosoftUser]) -> None:
        keyed: dict[str, MicrosoftUser] = {}
        for number, user in enumerate(users, start=1):
            user_id = user.get("id")
            if not isinstance(user_id, str) or not user_id:
                raise UserInputError(
                    "a Microsoft user has no 'id'", location=f"Microsoft user #{number}"
                )
            if user_id in keyed:
                raise UserInputError(
                    "two Microsoft users have this id", location=f"Microsoft user {user_id!r}"
                )
            keyed[user_id] = user
        self.ids: list[str] = sorted(keyed)
        self.users: list[MicrosoftUser] = [keyed[user_id] for user_id in self.ids]
        self._position_by_id = {user_id: position for position, user_id in enumerate(self.ids)}
        self._position_by_folded_name: dict[str, int | None] | None = None

    def __len__(self) -> int:
        return len(self.users)

    def resolve(self, reference: str) -> int | None:
        """Find a user by id (exact, then any case) or userPrincipalName (any case)."""
        position = self._position_by_id.get(reference)
        if position is not None:
            return position
        if self._position_by_folded_name is None:
            self._position_by_folded_name = self._fold_names()
        return self._position_by_folded_name.get(reference.casefold())

    def _fold_names(self) -> dict[str, int | None]:
        folded: dict[str, int | None] = {}
        for position, user in enumerate(self.users):
            upn = user.get("userPrincipalName")
            names = {self.ids[position].casefold()}
            if isinstance(upn, str) and upn:
                names.add(upn.casefold())
            for name in names:
                # A name two users share resolves to nobody rather than to either of them.
                folded[name] = None if name in folded else position
        for position, user_id in enumerate(self.ids):
            folded[user_id.casefold()] = position
        return folded

    def has_field(self, field: str) -> bool:
        """Tell whether at least one user has a value for the field."""
        read = MICROSOFT_FIELD_READERS[field]
        return any(read(user) for user in self.users)

    def build_index(self, field: str, normalize: ManyNormalizer) -> ValueIndex:
        """Map each normalised value of the field to the positions of the users that have it."""
        positions, values = field_columns(self.users, field)
        index: ValueIndex = {}
        get = index.get
        for position, key in zip(positions, normalize(values), strict=True):
            if not key:
                continue
            bucket = get(key)
            if bucket is None:
                index[key] = [position]
            elif bucket[-1] != position:  # positions come in order: one entry per user
                bucket.append(position)
        return index
