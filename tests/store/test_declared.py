"""Tenants, credentials, service accounts and PBX connections: file-declared and store-managed."""

from __future__ import annotations

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from m365pbx.store import (
    ConflictError,
    CredentialKind,
    CredentialSpec,
    Declarations,
    NotFoundError,
    Origin,
    PbxConnectionSpec,
    Permission,
    ReadOnlyObjectError,
    SecretBox,
    SecretKeyError,
    ServiceAccountSpec,
    SignInMethod,
    Store,
    TenantSpec,
    generate_key,
)
from tests.store.helpers import NOW, raw_value

CLIENT_SECRET = "client-secret-Q~do-not-leak"
PASSWORD = "account-password-do-not-leak"
AMI_SECRET = "ami-secret-do-not-leak"


def declarations(**overrides: object) -> Declarations:
    base: dict[str, object] = {
        "tenants": [TenantSpec("contoso", "11111111-1111-1111-1111-111111111111", "Contoso")],
        "credentials": [
            CredentialSpec(
                "teams-app",
                tenant="contoso",
                client_id="app-1",
                kind=CredentialKind.SECRET,
                client_secret=CLIENT_SECRET,
                permissions=[Permission.PRESENCE_READ, Permission.PRESENCE_WRITE],
            )
        ],
        "service_accounts": [
            ServiceAccountSpec(
                "Svc@Contoso.com",
                tenant="contoso",
                sign_in_method=SignInMethod.PASSWORD,
                credential="teams-app",
                password=PASSWORD,
            )
        ],
        "pbx_connections": [
            PbxConnectionSpec(
                "main-pbx",
                kind="asterisk",
                settings={"host": "pbx.example"},
                secret_settings={"ami_secret": AMI_SECRET},
            )
        ],
    }
    base.update(overrides)
    return Declarations(**base)  # type: ignore[arg-type]


async def test_sync_creates_file_managed_objects(store: Store) -> None:
    async with store.transaction() as tx:
        report = await tx.sync_declared(declarations())
    assert report.created == [
        "tenant 'contoso'",
        "credential 'teams-app'",
        "service account 'svc@contoso.com'",
        "PBX connection 'main-pbx'",
    ]
    async with store.transaction() as tx:
        account = await tx.service_accounts.find("SVC@contoso.com")
        assert account is not None and account.origin is Origin.FILE
        assert tx.service_accounts.password(account) == PASSWORD
        credential = await tx.credentials.find("teams-app")
        assert credential is not None and tx.credentials.client_secret(credential) == CLIENT_SECRET
        assert credential.permissions == ["presence.read", "presence.write"]
        assert account.credential_id == credential.id
        pbx = await tx.pbx_connections.find("main-pbx")
        assert pbx is not None and tx.pbx_connections.secret_settings(pbx) == {
            "ami_secret": AMI_SECRET
        }


async def test_sync_again_is_unchanged_and_keeps_ciphertext(
    store: Store, engine: AsyncEngine
) -> None:
    async with store.transaction() as tx:
        await tx.sync_declared(declarations())
    before = await raw_value(engine, "service_accounts", "password_encrypted")
    async with store.transaction() as tx:
        report = await tx.sync_declared(declarations())
    assert not report.changed and len(report.unchanged) == 4
    assert await raw_value(engine, "service_accounts", "password_encrypted") == before


async def test_sync_updates_adopts_and_removes(store: Store) -> None:
    async with store.transaction() as tx:
        await tx.sync_declared(declarations())
        await tx.pbx_connections.create(PbxConnectionSpec("lab-pbx", kind="sip"))
        await tx.service_accounts.set_refresh_token(
            (await tx.service_accounts.find("svc@contoso.com")).id,  # type: ignore[union-attr]
            "refresh-token",
        )
    changed = declarations(
        tenants=[TenantSpec("contoso", "11111111-1111-1111-1111-111111111111", "Contoso Ltd")],
        pbx_connections=[PbxConnectionSpec("lab-pbx", kind="sip")],
    )
    async with store.transaction() as tx:
        report = await tx.sync_declared(changed)
    assert report.updated == ["tenant 'contoso'"]
    assert report.adopted == ["PBX connection 'lab-pbx'"]
    assert report.removed == ["PBX connection 'main-pbx'"]
    async with store.transaction() as tx:
        lab = await tx.pbx_connections.find("lab-pbx")
        assert lab is not None and lab.origin is Origin.FILE
        assert await tx.pbx_connections.find("main-pbx") is None
        account = await tx.service_accounts.find("svc@contoso.com")
        assert account is not None
        # Runtime state is not declared: the sync keeps it.
        assert tx.service_accounts.refresh_token(account) == "refresh-token"


async def test_file_managed_objects_are_read_only(store: Store) -> None:
    async with store.transaction() as tx:
        await tx.sync_declared(declarations())
        tenant = await tx.tenants.find("contoso")
        assert tenant is not None
    async with store.transaction() as tx:
        with pytest.raises(ReadOnlyObjectError, match="configuration file"):
            await tx.tenants.update(tenant.id, TenantSpec("contoso", "other-id"))
        with pytest.raises(ReadOnlyObjectError):
            await tx.tenants.delete(tenant.id)


async def test_store_managed_crud(store: Store) -> None:
    async with store.transaction() as tx:
        tenant = await tx.tenants.create(TenantSpec("fabrikam", "fab-id"))
        assert tenant.origin is Origin.STORE
        with pytest.raises(ConflictError, match="already exists"):
            await tx.tenants.create(TenantSpec("fabrikam", "another-id"))
    async with store.transaction() as tx:
        updated = await tx.tenants.update(tenant.id, TenantSpec("fabrikam", "fab-id", "Fabrikam"))
        assert updated.display_name == "Fabrikam"
        assert [t.name for t in await tx.tenants.list_all()] == ["fabrikam"]
        assert (await tx.tenants.find_by_entra_id("fab-id")) is updated
    async with store.transaction() as tx:
        await tx.tenants.delete(tenant.id)
    async with store.transaction() as tx:
        assert await tx.tenants.list_all() == []
        with pytest.raises(NotFoundError):
            await tx.tenants.get(tenant.id)


async def test_conflicting_unique_key_is_a_clear_error(store: Store) -> None:
    async with store.transaction() as tx:
        await tx.tenants.create(TenantSpec("a", "same-entra-id"))
    with pytest.raises(ConflictError, match="cannot create tenant 'b'"):
        async with store.transaction() as tx:
            await tx.tenants.create(TenantSpec("b", "same-entra-id"))
    async with store.transaction() as tx:
        assert [t.name for t in await tx.tenants.list_all()] == ["a"]


async def test_reference_to_unknown_tenant_changes_nothing(store: Store) -> None:
    bad = declarations(
        service_accounts=[
            ServiceAccountSpec(
                "x@contoso.com", tenant="nope", sign_in_method=SignInMethod.DEVICE_CODE
            )
        ]
    )
    with pytest.raises(NotFoundError, match="names tenant 'nope'"):
        async with store.transaction() as tx:
            await tx.sync_declared(bad)
    async with store.transaction() as tx:
        assert await tx.tenants.list_all() == []


async def test_duplicate_declarations_are_refused(store: Store) -> None:
    twice = declarations(
        pbx_connections=[PbxConnectionSpec("p", "sip"), PbxConnectionSpec("p", "sip")]
    )
    with pytest.raises(ConflictError, match="PBX connection 'p' more than once"):
        async with store.transaction() as tx:
            await tx.sync_declared(twice)


async def test_credential_in_use_cannot_be_removed(store: Store) -> None:
    async with store.transaction() as tx:
        await tx.sync_declared(declarations(service_accounts=[]))
        await tx.service_accounts.create(
            ServiceAccountSpec(
                "api@contoso.com", "contoso", SignInMethod.DEVICE_CODE, credential="teams-app"
            )
        )
    with pytest.raises(ConflictError, match="cannot remove credential 'teams-app'"):
        async with store.transaction() as tx:
            await tx.sync_declared(declarations(service_accounts=[], credentials=[]))
    async with store.transaction() as tx:
        assert await tx.credentials.find("teams-app") is not None


async def test_deleting_a_tenant_cascades_to_what_belongs_to_it(store: Store) -> None:
    async with store.transaction() as tx:
        await tx.sync_declared(declarations())
        account = await tx.service_accounts.find("svc@contoso.com")
        assert account is not None
        await tx.subscriptions.save(
            "sub-1",
            tenant_id=account.tenant_id,
            service_account_id=account.id,
            resource="/communications/presences",
            expires_at=NOW,
            client_state="state",
            now=NOW,
        )
    async with store.transaction() as tx:
        report = await tx.sync_declared(
            declarations(tenants=[], credentials=[], service_accounts=[])
        )
    assert report.removed == [
        "service account 'svc@contoso.com'",
        "credential 'teams-app'",
        "tenant 'contoso'",
    ]
    async with store.transaction() as tx:
        assert await tx.subscriptions.list_all() == []


async def test_secrets_are_encrypted_at_rest(
    store: Store, engine: AsyncEngine, box: SecretBox
) -> None:
    async with store.transaction() as tx:
        await tx.sync_declared(declarations())
    for table, column, plaintext in [
        ("credentials", "client_secret_encrypted", CLIENT_SECRET),
        ("service_accounts", "password_encrypted", PASSWORD),
        ("pbx_connections", "secret_settings_encrypted", f'{{"ami_secret": "{AMI_SECRET}"}}'),
    ]:
        stored = await raw_value(engine, table, column)
        assert isinstance(stored, str)
        assert PASSWORD not in stored and CLIENT_SECRET not in stored and AMI_SECRET not in stored
        assert box.decrypt(stored, what=column) == plaintext


async def test_repr_never_shows_secrets(store: Store) -> None:
    specs = declarations()
    shown = " ".join(
        repr(spec) for spec in [*specs.credentials, *specs.service_accounts, *specs.pbx_connections]
    )
    async with store.transaction() as tx:
        await tx.sync_declared(specs)
        rows = [
            *await tx.credentials.list_all(),
            *await tx.service_accounts.list_all(),
            *await tx.pbx_connections.list_all(),
        ]
        shown += " ".join(repr(row) for row in rows)
        shown += repr(tx.box) + repr(store)
    assert "svc@contoso.com" in shown  # the reprs do say something useful
    for secret in (CLIENT_SECRET, PASSWORD, AMI_SECRET, "_encrypted", "gAAAAA"):
        assert secret not in shown


async def test_wrong_key_on_read_is_a_clear_error(store: Store) -> None:
    async with store.transaction() as tx:
        await tx.sync_declared(declarations())
    other = Store(store.engine, SecretBox([generate_key()], source="key file other.key"))
    async with other.transaction() as tx:
        account = await tx.service_accounts.find("svc@contoso.com")
        assert account is not None
        with pytest.raises(SecretKeyError) as caught:
            tx.service_accounts.password(account)
    message = str(caught.value)
    assert "password of service account 'svc@contoso.com'" in message
    assert "other.key" in message and PASSWORD not in message


async def test_rotating_secrets_moves_them_to_the_new_key(store: Store, secret_key: str) -> None:
    async with store.transaction() as tx:
        await tx.sync_declared(declarations())
    new_key = generate_key()
    rotated_store = Store(store.engine, SecretBox([new_key, secret_key]))
    async with rotated_store.transaction() as tx:
        assert await tx.rotate_secrets() == 3
    new_only = Store(store.engine, SecretBox([new_key]))
    async with new_only.transaction() as tx:
        account = await tx.service_accounts.find("svc@contoso.com")
        assert account is not None and tx.service_accounts.password(account) == PASSWORD
