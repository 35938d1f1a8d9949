"""Access tokens from Entra ID through MSAL: for the app itself, and for service accounts.

MSAL is synchronous and its constructor talks to the network (OIDC discovery), so every
MSAL call runs in a worker thread. MSAL keeps its own token cache on the wall clock; when
Graph still refuses a token (401, e.g. revoked, or a virtual clock ran past its expiry)
the caller asks `invalidate()` to drop it so that the next `token()` fetches a fresh one
(design.md, "Time").
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import msal
import requests

from m365pbx.graph.auth_http import DEFAULT_TIMEOUT, AuthoritySession, sign_in_failure
from m365pbx.graph.errors import SignInError, SignInUnavailable, sign_in_error
from m365pbx.graph.proxy import ProxyChoice

MICROSOFT_LOGIN = "https://login.microsoftonline.com"
GRAPH_DEFAULT_SCOPE = "https://graph.microsoft.com/.default"


class TokenSource(Protocol):
    """Something that hands out Graph access tokens."""

    async def token(self) -> str:
        """A valid access token (cached while it lasts)."""
        ...

    async def invalidate(self) -> None:
        """Forget cached access tokens: Graph refused one."""
        ...


@dataclass(frozen=True)
class Authority:
    """Where to sign in: the login host (Entra ID or a simulator) and the tenant."""

    tenant: str
    host: str = MICROSOFT_LOGIN
    # A CA bundle path, or True for the system's trust store.
    verify: bool | str = True
    # The proxy decision shared with Graph's client (None: HTTPS_PROXY and NO_PROXY).
    proxy: ProxyChoice | None = None
    timeout: float | tuple[float, float] = DEFAULT_TIMEOUT

    @property
    def url(self) -> str:
        """The MSAL authority URL."""
        return f"{self.host.rstrip('/')}/{self.tenant}"


@dataclass(frozen=True)
class ClientCredential:
    """An app registration's credential: a secret, or a certificate (PEM key + thumbprint)."""

    client_id: str
    secret: str | None = field(default=None, repr=False)
    private_key_pem: str | None = field(default=None, repr=False)
    thumbprint_hex: str | None = None
    # The password of an encrypted private key (MSAL's "passphrase").
    passphrase: str | None = field(default=None, repr=False)

    def for_msal(self) -> str | dict[str, str] | None:
        """The `client_credential` argument MSAL expects."""
        if self.secret is not None:
            return self.secret
        if self.private_key_pem is not None and self.thumbprint_hex is not None:
            certificate = {"private_key": self.private_key_pem, "thumbprint": self.thumbprint_hex}
            if self.passphrase is not None:
                certificate["passphrase"] = self.passphrase
            return certificate
        return None


def raise_for_result(result: Mapping[str, Any] | None) -> str:
    """The access token of an MSAL result, or the SignInError it describes."""
    if result and "access_token" in result:
        return str(result["access_token"])
    if not result:
        raise SignInError("sign-in gave no answer", hint="Check the connection to Entra ID.")
    codes = result.get("error_codes") or [0]
    raise sign_in_error(
        str(result.get("error", "")), int(codes[0]), str(result.get("error_description", "")),
        int(result.get("status", 400) or 400),
    )


class _MsalApp:
    """Builds one MSAL application lazily (in a worker thread) and serialises its use."""

    def __init__(self, authority: Authority, credential: ClientCredential,
                 *, public: bool) -> None:
        self.authority = authority
        self.credential = credential
        self.public = public
        self._app: msal.ClientApplication | None = None
        self._lock = threading.Lock()
        proxy = authority.proxy if authority.proxy is not None else (
            ProxyChoice.from_environment())
        self.session = AuthoritySession(authority.host, verify=authority.verify, proxy=proxy,
                                        timeout=authority.timeout)

    def get(self) -> msal.ClientApplication:
        with self._lock:
            if self._app is None:
                common: dict[str, Any] = {
                    "authority": self.authority.url,
                    "http_client": self.session,
                    # Discovery would ask Microsoft's global endpoint about the authority.
                    "instance_discovery": False,
                }
                if self.public:
                    self._app = msal.PublicClientApplication(self.credential.client_id, **common)
                else:
                    self._app = msal.ConfidentialClientApplication(
                        self.credential.client_id,
                        client_credential=self.credential.for_msal(),
                        **common,
                    )
            return self._app

    def drop_access_tokens(self) -> None:
        with self._lock:
            app = self._app
        if app is None:
            return  # never signed in: nothing cached
        cache = app.token_cache
        for item in list(cache.search(msal.TokenCache.CredentialType.ACCESS_TOKEN)):
            cache.remove_at(item)


async def _in_thread(call: Callable[[], Any], msal_app: _MsalApp | None = None) -> Any:
    """Run an MSAL call in a worker thread; its network failures become SignInErrors."""
    try:
        return await asyncio.to_thread(call)
    except (requests.RequestException, msal.exceptions.MsalError, ValueError,
            RuntimeError) as exc:
        if msal_app is None:
            raise
        failure = sign_in_failure(exc, msal_app.authority.host)
        if failure is None:
            raise
        if isinstance(failure, SignInUnavailable):
            failure.retry_after = msal_app.session.retry_after
        raise failure from None


def _with_retry_after(msal_app: _MsalApp, result: Any) -> str:
    """`raise_for_result`, adding the Retry-After Entra ID sent to a SignInUnavailable."""
    try:
        return raise_for_result(result)
    except SignInUnavailable as exc:
        exc.retry_after = msal_app.session.retry_after
        raise


class AppTokenSource:
    """Tokens for the app itself (client credentials: application permissions)."""

    def __init__(self, authority: Authority, credential: ClientCredential,
                 scopes: list[str] | None = None) -> None:
        self._msal = _MsalApp(authority, credential, public=False)
        self._scopes = scopes or [GRAPH_DEFAULT_SCOPE]

    async def token(self) -> str:
        """An application token; MSAL serves it from its cache while it lasts."""
        def acquire() -> Any:
            app = self._msal.get()
            assert isinstance(app, msal.ConfidentialClientApplication)
            return app.acquire_token_for_client(scopes=self._scopes)

        return _with_retry_after(self._msal, await _in_thread(acquire, self._msal))

    async def invalidate(self) -> None:
        """Drop cached tokens so the next call signs in again."""
        await _in_thread(self._msal.drop_access_tokens, self._msal)


class ServiceAccountTokenSource:
    """Delegated tokens for a service account, from its password or a stored refresh token.

    With a refresh token (from device-code sign-in, which works for MFA accounts) each
    renewal may hand out a new refresh token; `on_refresh_token` receives it to be stored.
    """

    def __init__(
        self,
        authority: Authority,
        credential: ClientCredential,
        upn: str,
        *,
        password: str | None = None,
        refresh_token: str | None = None,
        on_refresh_token: Callable[[str], None] | None = None,
        scopes: list[str] | None = None,
    ) -> None:
        if password is None and refresh_token is None:
            raise ValueError("a service account needs a password or a refresh token")
        public = credential.for_msal() is None
        self._msal = _MsalApp(authority, credential, public=public)
        self.upn = upn
        self._password = password
        self._refresh_token = refresh_token
        self._on_refresh_token = on_refresh_token
        self._scopes = scopes or [GRAPH_DEFAULT_SCOPE]

    def _cached_refresh_token(self, app: msal.ClientApplication) -> str | None:
        for item in app.token_cache.search(msal.TokenCache.CredentialType.REFRESH_TOKEN):
            return str(item.get("secret"))
        return None

    def _acquire(self) -> Any:
        app = self._msal.get()
        accounts = [a for a in app.get_accounts()
                    if str(a.get("username", "")).casefold() == self.upn.casefold()]
        if accounts:
            result = app.acquire_token_silent(self._scopes, account=accounts[0])
            if result and "access_token" in result:
                return result
        if self._password is not None:
            return app.acquire_token_by_username_password(self.upn, self._password, self._scopes)
        assert self._refresh_token is not None
        return app.acquire_token_by_refresh_token(self._refresh_token, self._scopes)

    async def token(self) -> str:
        """A delegated token for the account; renews through MSAL's cache or signs in."""
        result = await _in_thread(self._acquire, self._msal)
        token = _with_retry_after(self._msal, result)
        app = self._msal.get()
        newest = self._cached_refresh_token(app)
        if newest and newest != self._refresh_token:
            self._refresh_token = newest
            if self._on_refresh_token is not None and self._password is None:
                self._on_refresh_token(newest)
        return token

    async def invalidate(self) -> None:
        """Drop cached access tokens; the refresh token stays and renews them."""
        await _in_thread(self._msal.drop_access_tokens, self._msal)


@dataclass(frozen=True)
class DeviceCodePrompt:
    """What to show the admin: the code, where to enter it, and Microsoft's own sentence."""

    user_code: str
    verification_uri: str
    message: str
    expires_in: int
    flow: dict[str, Any] = field(repr=False)


@dataclass(frozen=True)
class DeviceCodeResult:
    """A completed device-code sign-in: who signed in and the refresh token to store."""

    upn: str
    refresh_token: str = field(repr=False)


class DeviceCodeSignIn:
    """One-time sign-in of a service account with a device code (works with MFA)."""

    def __init__(self, authority: Authority, credential: ClientCredential,
                 scopes: list[str] | None = None) -> None:
        self._msal = _MsalApp(authority, credential, public=credential.for_msal() is None)
        self._scopes = scopes or [GRAPH_DEFAULT_SCOPE]

    async def start(self) -> DeviceCodePrompt:
        """Ask Entra ID for a device code."""
        flow = await _in_thread(lambda: self._msal.get().initiate_device_flow(self._scopes),
                                self._msal)
        if "user_code" not in flow:
            raise_for_result(flow)
        return DeviceCodePrompt(str(flow["user_code"]), str(flow["verification_uri"]),
                                str(flow.get("message", "")), int(flow.get("expires_in", 900)),
                                flow)

    async def finish(self, prompt: DeviceCodePrompt) -> DeviceCodeResult:
        """Wait until the person entered the code (or it expired) and return the result."""
        app = self._msal.get()
        result = await _in_thread(lambda: app.acquire_token_by_device_flow(prompt.flow),
                                  self._msal)
        raise_for_result(result)
        refresh_token = result.get("refresh_token")
        claims = result.get("id_token_claims") or {}
        upn = str(claims.get("preferred_username") or claims.get("upn") or "")
        if not refresh_token:
            raise SignInError("the sign-in gave no refresh token",
                              hint="Grant the app the offline_access permission.")
        return DeviceCodeResult(upn=upn, refresh_token=str(refresh_token))
