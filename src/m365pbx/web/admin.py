"""Administration routes of the running service: "Sync now" (issue 18, item 10).

They sit beside the presence API under `/api/v1`, with its keys, its error shape and its
guard; starting a directory sync needs the `write` scope (a key that may replace a PBX's
users may ask for them to be matched again). `m365pbx sync now` calls them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from fastapi import APIRouter, Depends, Query
from fastapi.security import HTTPBearer
from pydantic import BaseModel, Field

from m365pbx.pbx.api.guard import ERROR_RESPONSES, ApiError, guarded_route_class, requires
from m365pbx.pbx.api.keys import ApiKeyChecker, Scope
from m365pbx.pbx.api.schemas import ErrorBody

PREFIX = "/api/v1"
SYNC_PATH = "/directory/sync"
_BEARER = [Depends(HTTPBearer(auto_error=False, description="an API key: m365pbx_..."))]

SyncNow = Callable[[str | None], list[str]]
"""Starts a full directory sync of one tenant (None: every tenant); returns the names
started; LookupError for an unknown tenant."""


class SyncStarted(BaseModel):
    """The tenants whose directory sync was started."""

    tenants: list[str] = Field(description="names of the tenants now syncing")


def admin_router(sync_now: SyncNow, keys: ApiKeyChecker) -> APIRouter:
    """Return the administration routes."""
    router = APIRouter(prefix=PREFIX, tags=["administration"],
                       route_class=guarded_route_class(keys), responses=ERROR_RESPONSES)

    @router.post(
        SYNC_PATH,
        status_code=202,
        response_model=SyncStarted,
        dependencies=_BEARER,
        openapi_extra=requires(Scope.WRITE),
        responses={404: {"model": ErrorBody, "description": "Unknown tenant"}},
    )
    async def sync_directory(
        tenant: Annotated[str | None, Query(max_length=100,
                                            description="only this tenant (its name)")] = None,
    ) -> SyncStarted:
        """Start a full directory sync at once (every tenant, or one); answers before it ends."""
        try:
            started = sync_now(tenant)
        except LookupError:
            raise ApiError(404, "unknown-tenant", f"there is no tenant {tenant!r}") from None
        return SyncStarted(tenants=started)

    return router
