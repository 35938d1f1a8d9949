"""PBX connections: one configured PBX adapter instance each."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from m365pbx.store.repositories._common import assign
from m365pbx.store.repositories.declarable import DeclarableRepository
from m365pbx.store.tables import PbxConnection


@dataclass(frozen=True)
class PbxConnectionSpec:
    """The declared fields of a PBX connection; `secret_settings` (passwords) never in repr."""

    name: str
    kind: str
    settings: Mapping[str, Any] = field(default_factory=dict)
    secret_settings: Mapping[str, str] = field(default_factory=dict, repr=False)
    mapping_overrides: Mapping[str, Any] = field(default_factory=dict)


class PbxConnectionRepository(DeclarableRepository[PbxConnection, PbxConnectionSpec]):
    """PBX connections, by name; secret settings are stored as one encrypted JSON object."""

    model = PbxConnection
    kind: ClassVar[str] = "PBX connection"

    def key_of(self, spec: PbxConnectionSpec) -> str:
        """Return the connection's name."""
        return spec.name

    def secret_settings(self, row: PbxConnection) -> dict[str, str]:
        """Return the decrypted secret settings (empty when there are none)."""
        text = self._reveal(row, "secret_settings_encrypted")
        return {} if text is None else dict(json.loads(text))

    async def _apply(self, row: PbxConnection, spec: PbxConnectionSpec) -> bool:
        secrets = (
            json.dumps(dict(spec.secret_settings), sort_keys=True) if spec.secret_settings else None
        )
        changes = [
            assign(row, "name", spec.name),
            assign(row, "kind", spec.kind),
            assign(row, "settings", dict(spec.settings)),
            assign(row, "mapping_overrides", dict(spec.mapping_overrides)),
            self._assign_secret(row, "secret_settings_encrypted", secrets),
        ]
        return any(changes)
