"""`m365pbx check`: diagnose an installation before anything runs (reads only, writes nothing).

Each module checks one kind of thing and returns findings (ok / warn / fail, in words, with
the fix): hosts (reachable, TLS, clock), consent (each credential's permissions per enabled
feature), accounts and capacity (service accounts), public_url (the webhook handshake) and
pbx (each connection).
"""

from m365pbx.check.context import CheckContext
from m365pbx.check.findings import Finding, Status, as_json, exit_status, worst
from m365pbx.check.runner import run_checks

__all__ = ["CheckContext", "Finding", "Status", "as_json", "exit_status", "run_checks", "worst"]
