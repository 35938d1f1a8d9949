"""The shared shape of the repositories for objects the YAML file can declare."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Collection, Mapping
from enum import StrEnum
from typing import Any, ClassVar, Generic, TypeVar

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from m365pbx.store.enums import Origin
from m365pbx.store.errors import ConflictError, NotFoundError, ReadOnlyObjectError
from m365pbx.store.repositories._common import assign, flush_or_conflict, get_or_raise
from m365pbx.store.secrets import SecretBox
from m365pbx.store.tables import Declared

D = TypeVar("D", bound=Declared)
S = TypeVar("S")


class Change(StrEnum):
    """What writing a declared object did."""

    CREATED = "created"
    UPDATED = "updated"
    ADOPTED = "adopted"
    UNCHANGED = "unchanged"


class DeclarableRepository(ABC, Generic[D, S]):
    """CRUD for store-managed objects plus the upsert/remove used for file-declared ones.

    Objects with origin `file` are read-only here: `update` and `delete` refuse them.
    """

    model: ClassVar[type[Declared]]
    kind: ClassVar[str]
    key_column: ClassVar[str] = "name"

    def __init__(self, session: AsyncSession, box: SecretBox) -> None:
        self.session = session
        self.box = box

    @abstractmethod
    def key_of(self, spec: S) -> str:
        """Return the unique key (name or UPN) a spec declares."""

    @abstractmethod
    async def _apply(self, row: D, spec: S) -> bool:
        """Copy a spec onto a row (encrypting secrets); return whether anything changed."""

    async def get(self, object_id: int) -> D:
        """Return the object with this id or raise NotFoundError."""
        row = await get_or_raise(self.session, self.model, object_id, self.kind)
        return row  # type: ignore[return-value]

    async def find(self, key: str) -> D | None:
        """Return the object with this key (name or UPN), or None."""
        column = getattr(self.model, self.key_column)
        result = await self.session.scalars(select(self.model).where(column == key))
        return result.one_or_none()  # type: ignore[return-value]

    async def list_all(self) -> list[D]:
        """Return every object of this kind, ordered by key."""
        column = getattr(self.model, self.key_column)
        result = await self.session.scalars(select(self.model).order_by(column))
        return list(result)  # type: ignore[arg-type]

    async def create(self, spec: S) -> D:
        """Create a store-managed object; ConflictError when the key is taken."""
        return await self._insert(spec, Origin.STORE)

    async def update(self, object_id: int, spec: S) -> D:
        """Replace the declared fields of a store-managed object (None clears a secret)."""
        row = await self.get(object_id)
        self._ensure_writable(row)
        key = self.key_of(spec)
        if key != self._key(row) and await self.find(key) is not None:
            raise ConflictError(f"a {self.kind} {key!r} already exists")
        await self._apply(row, spec)
        await flush_or_conflict(self.session, f"cannot update {self.kind} {key!r}")
        return row

    async def delete(self, object_id: int) -> None:
        """Delete a store-managed object (runtime state that belongs to it goes with it)."""
        row = await self.get(object_id)
        self._ensure_writable(row)
        await self._delete(row, "it is still in use")

    async def set_mapping_overrides(self, key: str, document: Mapping[str, Any]) -> D:
        """Replace the mapping overrides of a store-managed tenant or PBX connection."""
        row = await self.find(key)
        if row is None:
            raise NotFoundError(f"no {self.kind} {key!r}")
        if not hasattr(row, "mapping_overrides"):
            raise TypeError(f"a {self.kind} has no mapping overrides")
        self._ensure_writable(row)
        row.mapping_overrides = dict(document)  # type: ignore[attr-defined]
        await flush_or_conflict(self.session, f"cannot update {self.kind} {key!r}")
        return row

    async def upsert_declared(self, spec: S) -> Change:
        """Write an object declared in the file, marking it file-managed."""
        row = await self.find(self.key_of(spec))
        if row is None:
            await self._insert(spec, Origin.FILE)
            return Change.CREATED
        changed = await self._apply(row, spec)
        adopted = assign(row, "origin", Origin.FILE)
        await flush_or_conflict(self.session, f"cannot update {self.kind} {self._key(row)!r}")
        if adopted:
            return Change.ADOPTED
        return Change.UPDATED if changed else Change.UNCHANGED

    async def remove_undeclared(self, declared_keys: Collection[str]) -> list[str]:
        """Delete the file-managed objects whose key the file no longer declares."""
        column = getattr(self.model, self.key_column)
        query = select(self.model).where(self.model.origin == Origin.FILE).order_by(column)
        removed: list[str] = []
        for row in await self.session.scalars(query):
            key = self._key(row)
            if key not in declared_keys:
                await self._delete(row, "no longer in the configuration file, but still in use")
                removed.append(key)
        return removed

    async def _insert(self, spec: S, origin: Origin) -> D:
        key = self.key_of(spec)
        if await self.find(key) is not None:
            raise ConflictError(f"a {self.kind} {key!r} already exists")
        row: Any = self.model(origin=origin)
        await self._apply(row, spec)
        self.session.add(row)
        await flush_or_conflict(self.session, f"cannot create {self.kind} {key!r}")
        return row  # type: ignore[no-any-return]

    async def _delete(self, row: Declared, why: str) -> None:
        await self.session.delete(row)
        await flush_or_conflict(
            self.session, f"cannot remove {self.kind} {self._key(row)!r}: {why}"
        )

    def _key(self, row: Declared) -> str:
        return str(getattr(row, self.key_column))

    def _ensure_writable(self, row: Declared) -> None:
        if row.origin == Origin.FILE:
            raise ReadOnlyObjectError(
                f"{self.kind} {self._key(row)!r} is declared in the configuration file; "
                "change it there"
            )

    def _assign_secret(self, row: Declared, column: str, plaintext: str | None) -> bool:
        """Store a secret encrypted; keep the old token (no churn) when the value is the same."""
        token = getattr(row, column)
        if token is None and plaintext is None:
            return False
        if token is not None and plaintext is not None:
            what = f"{column.removesuffix('_encrypted')} of {self.kind} {self._key(row)!r}"
            if self.box.decrypt(token, what=what) == plaintext:
                return False
        setattr(row, column, self.box.encrypt_optional(plaintext))
        return True

    def _reveal(self, row: Declared, column: str) -> str | None:
        what = f"{column.removesuffix('_encrypted')} of {self.kind} {self._key(row)!r}"
        return self.box.decrypt_optional(getattr(row, column), what=what)

