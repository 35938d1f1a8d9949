"""Re-encrypt every stored secret with the newest key (the second half of a key rotation)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from m365pbx.store.secrets import SecretBox
from m365pbx.store.tables import Base


async def rotate_secrets(session: AsyncSession, box: SecretBox) -> int:
    """Re-encrypt all secret columns with the box's first key; return how many values changed.

    After this has committed, the old key can be dropped from the configuration.
    """
    rotated = 0
    for mapper in sorted(Base.registry.mappers, key=lambda m: m.class_.__name__):
        model = mapper.class_
        columns = [column for column in mapper.columns if column.info.get("secret")]
        if not columns:
            continue
        for row in await session.scalars(select(model)):
            for column in columns:
                attribute = mapper.get_property_by_column(column).key
                token = getattr(row, attribute)
                if token is None:
                    continue
                what = f"{column.name.removesuffix('_encrypted')} of {model.__tablename__} {row.id}"
                setattr(row, attribute, box.rotate(token, what=what))
                rotated += 1
    await session.flush()
    return rotated
