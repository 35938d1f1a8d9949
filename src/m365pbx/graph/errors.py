"""One exception per way Microsoft 365 can fail us, each with a sentence saying how to fix it.

Entra ID answers carry an AADSTS number; Graph answers an HTTP status and an error `code`.
Both are kept on the exception for logs and metrics, and `hint` is what an admin reads
(mapping.md: "the status line shows raw AADSTS codes. Explain each code in words").
"""

from __future__ import annotations

from dataclasses import dataclass


class M365Error(Exception):
    """Base of every Microsoft 365 failure; `hint` says what to do about it."""

    retryable = False

    def __init__(self, message: str, *, hint: str = "", code: str = "", status: int = 0,
                 request_id: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.code = code
        self.status = status
        self.request_id = request_id

    def describe(self) -> str:
        """The message and the hint, for a status line."""
        return f"{self.message}. {self.hint}" if self.hint else self.message


# --- Entra ID (token endpoint) -------------------------------------------------------------


class SignInError(M365Error):
    """Entra ID refused to issue a token; `aadsts` is the AADSTS number (0 if none)."""

    def __init__(self, message: str, *, aadsts: int = 0, error: str = "", hint: str = "",
                 status: int = 400) -> None:
        super().__init__(message, hint=hint, code=error, status=status)
        self.aadsts = aadsts


class BadCredentials(SignInError):
    """The client secret, certificate or the service account's password is wrong."""


class CredentialExpired(SignInError):
    """The client secret or certificate has expired."""


class MfaRequired(SignInError):
    """The account needs multi-factor authentication, so a password alone cannot sign in."""


class ConsentMissing(SignInError):
    """The app lacks admin consent for a permission it asks for."""


class AccountUnusable(SignInError):
    """The account is disabled, unknown, locked or blocked by a policy."""


class AppNotFound(SignInError):
    """The client id is not registered in this tenant (or the tenant does not exist)."""


class PublicClientFlowsDisabled(SignInError):
    """The app registration does not allow password or device-code sign-in."""


class ReauthenticationNeeded(SignInError):
    """A stored refresh token expired or was revoked: the account must sign in again."""


class DeviceCodeExpired(SignInError):
    """Nobody entered the device code in time."""


class DeviceCodeDeclined(SignInError):
    """The person declined the device-code sign-in."""


class SignInUnavailable(SignInError):
    """Entra ID is temporarily unavailable, unreachable or throttling sign-ins."""

    retryable = True
    # Seconds Entra ID asked us to wait (its Retry-After), when it said.
    retry_after: float | None = None


@dataclass(frozen=True)
class AadstsAdvice:
    """How one AADSTS number is explained and which exception carries it."""

    kind: type[SignInError]
    meaning: str
    fix: str


# Numbers and meanings from Entra's error reference (graph.md 1.3); fixes are ours.
AADSTS: dict[int, AadstsAdvice] = {
    50126: AadstsAdvice(BadCredentials, "wrong user name or password",
                        "Check the service account's password in the configuration."),
    50076: AadstsAdvice(MfaRequired, "the account must use multi-factor authentication",
                        "Declare the service account with 'sign_in: device_code' and sign "
                        "it in once with 'm365pbx signin UPN' (works with MFA), or use "
                        "polling with application permissions."),
    50079: AadstsAdvice(MfaRequired, "the account must first register for multi-factor "
                        "authentication", "Sign in once as that account in a browser to "
                        "register MFA, then use device-code sign-in."),
    50034: AadstsAdvice(AccountUnusable, "the account does not exist in this tenant",
                        "Check the service account's user principal name and the tenant."),
    50057: AadstsAdvice(AccountUnusable, "the account is disabled",
                        "Enable the account in Entra ID or configure another one."),
    50053: AadstsAdvice(AccountUnusable, "the account is locked after too many wrong "
                        "passwords", "Wait for the lockout to end, then fix the password "
                        "in the configuration."),
    53003: AadstsAdvice(AccountUnusable, "a Conditional Access policy blocks this sign-in",
                        "Exclude the service account (or this server's address) from the "
                        "policy, or use device-code sign-in if the policy allows it."),
    65001: AadstsAdvice(ConsentMissing, "the app has no consent for the requested "
                        "permissions", "Grant admin consent for the app registration's API "
                        "permissions in the Entra admin center."),
    700016: AadstsAdvice(AppNotFound, "the application id is not found in this tenant",
                         "Check the client id and the tenant id; the app must be "
                         "registered (or consented) in this tenant."),
    90002: AadstsAdvice(AppNotFound, "the tenant does not exist",
                        "Check the tenant id or domain in the configuration."),
    7000215: AadstsAdvice(BadCredentials, "the client secret is wrong",
                          "Paste the secret's Value, not its Secret ID; a secret created "
                          "a moment ago may need a minute before it works."),
    7000222: AadstsAdvice(CredentialExpired, "the client secret has expired",
                          "Create a new client secret for the app registration and put its "
                          "value in the configuration."),
    700027: AadstsAdvice(BadCredentials, "the certificate is not registered on the app",
                         "Upload the certificate's public part to the app registration."),
    7000218: AadstsAdvice(PublicClientFlowsDisabled, "the app registration needs a client "
                          "secret or must allow public client flows",
                          "Turn on 'Allow public client flows' in the app registration "
                          "(Authentication), or configure a client secret."),
    700025: AadstsAdvice(PublicClientFlowsDisabled, "a public client must not send a secret",
                         "Remove the client secret from this credential, or turn off "
                         "'Allow public client flows'."),
    700082: AadstsAdvice(ReauthenticationNeeded, "the stored sign-in expired after a long "
                         "time unused", "Sign the service account in again with device "
                         "code."),
    50173: AadstsAdvice(ReauthenticationNeeded, "the stored sign-in was revoked",
                        "Sign the service account in again with device code."),
    70008: AadstsAdvice(ReauthenticationNeeded, "the stored sign-in expired",
                        "Sign the service account in again with device code."),
    70019: AadstsAdvice(DeviceCodeExpired, "the device code expired",
                        "Start the device-code sign-in again and enter the code within "
                        "15 minutes."),
    50196: AadstsAdvice(SignInUnavailable, "too many sign-ins in a short time",
                        "Nothing to do: m365pbx caches tokens and will retry later."),
}


def sign_in_error(error: str, aadsts: int, description: str, status: int) -> SignInError:
    """The exception for a token-endpoint error answer, with its explanation."""
    advice = AADSTS.get(aadsts)
    if advice is not None:
        message = f"sign-in refused: {advice.meaning} (AADSTS{aadsts})"
        return advice.kind(message, aadsts=aadsts, error=error, hint=advice.fix, status=status)
    if error == "authorization_declined":
        return DeviceCodeDeclined("the device-code sign-in was declined", error=error,
                                  hint="Start it again if that was a mistake.", status=status)
    if error == "expired_token":
        return DeviceCodeExpired("the device code expired", error=error,
                                 hint="Start the device-code sign-in again.", status=status)
    if error == "temporarily_unavailable" or status >= 500 or status == 429:
        return SignInUnavailable(f"Entra ID is unavailable ({error or status})", error=error,
                                 hint="m365pbx retries with backoff.", status=status)
    first_line = description.split("\r\n")[0].split(" Trace ID:")[0].strip()
    code = f" (AADSTS{aadsts})" if aadsts else ""
    return SignInError(f"sign-in refused: {first_line or error}{code}", aadsts=aadsts,
                       error=error, status=status)


# --- Graph -----------------------------------------------------------------------------------


class GraphError(M365Error):
    """Graph answered with an error status."""


class InvalidToken(GraphError):
    """Graph refused the access token (expired, revoked or for another audience)."""


class Forbidden(GraphError):
    """The token lacks a permission the request needs."""


class NotFound(GraphError):
    """The user, subscription or resource does not exist."""


class Conflict(GraphError):
    """The request conflicts with existing state (e.g. a presence subscription exists)."""


class BadRequest(GraphError):
    """Graph refused the request as malformed or unsupported."""


class Throttled(GraphError):
    """Graph throttled the request (429); `retry_after` says how long to wait."""

    retryable = True

    def __init__(self, message: str, *, retry_after: float, **kwargs: object) -> None:
        super().__init__(message, **kwargs)  # type: ignore[arg-type]
        self.retry_after = retry_after


class Unavailable(GraphError):
    """Graph failed on its side (5xx) or did not answer in time."""

    retryable = True

    def __init__(self, message: str, *, retry_after: float | None = None,
                 **kwargs: object) -> None:
        super().__init__(message, **kwargs)  # type: ignore[arg-type]
        self.retry_after = retry_after


def graph_error(status: int, code: str, message: str, *, request_id: str | None,
                retry_after: float | None) -> GraphError:
    """The exception for a Graph error answer (branch on status and code, never message)."""
    text = f"Graph {status} {code}: {message}" if code else f"Graph {status}: {message}"
    if status == 429:
        return Throttled(text, retry_after=retry_after or 1.0, code=code, status=status,
                         request_id=request_id, hint="m365pbx waits as Graph asks.")
    if status >= 500:
        return Unavailable(text, retry_after=retry_after, code=code, status=status,
                           request_id=request_id, hint="m365pbx retries with backoff.")
    kinds: dict[int, tuple[type[GraphError], str]] = {
        401: (InvalidToken, "m365pbx signs in again once; if it persists, check the app's "
                            "credentials."),
        403: (Forbidden, "Grant the app registration the needed API permission with admin "
                         "consent."),
        404: (NotFound, ""),
        409: (Conflict, ""),
    }
    kind, hint = kinds.get(status, (BadRequest, ""))
    return kind(text, hint=hint, code=code, status=status, request_id=request_id)
