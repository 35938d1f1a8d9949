"""`m365pbx secrets rotate`: a new secret key, every stored secret re-encrypted with it.

With a key file the whole rotation is done here: the new key is put first in the file (the
old ones stay after it until every secret is re-encrypted, so an interruption loses
nothing), the secrets are re-encrypted in one transaction, then the old keys are removed.
With $M365PBX_SECRET_KEY the environment cannot be edited from here: the admin puts the new
key first, this command re-encrypts, and the admin drops the old keys.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from m365pbx.cli.app import app, reports_input_errors
from m365pbx.cli.words import Typer
from m365pbx.errors import UserInputError

secrets_app = Typer(
    name="secrets",
    help="The key that encrypts the secrets kept in the database.",
    no_args_is_help=True,
)
app.add_typer(secrets_app, name="secrets")

ConfigOption = Annotated[
    Path | None,
    typer.Option("--config", "-c", dir_okay=False,
                 help="Configuration file (database, key file). Default: $M365PBX_CONFIG, "
                      "else ./m365pbx.yaml if present."),
]


@secrets_app.command("rotate")
@reports_input_errors
def rotate(config: ConfigOption = None) -> None:
    """Encrypt every stored secret with a new key; the old key decrypts nothing afterwards.

    Stop m365pbx first and start it again afterwards. Backups made before keep needing the
    old key.
    """
    from m365pbx.cli.store_access import in_store
    from m365pbx.config import load_config
    from m365pbx.store import Repositories, SecretBox, generate_key
    from m365pbx.store.secrets import ENV_VAR, parse_keys, read_key_file, write_key_file

    settings = load_config(config)

    async def work(tx: Repositories) -> int:
        return await tx.rotate_secrets()

    if ENV_VAR in os.environ:
        keys = parse_keys(os.environ[ENV_VAR], source=ENV_VAR)
        if len(keys) < 2:
            raise UserInputError(
                f"{ENV_VAR} holds one key: put a new key first and the current one after a "
                "comma, then run this again (a new key: python3 -c 'from cryptography.fernet "
                "import Fernet; print(Fernet.generate_key().decode())')")
        count = in_store(settings, work, create=False, box=SecretBox(keys, source=ENV_VAR))
        typer.echo(f"re-encrypted {count} stored secrets with the first key of {ENV_VAR}")
        typer.echo(f"now remove the other {len(keys) - 1} key(s) from {ENV_VAR}: they decrypt "
                   "nothing stored any more (keep them only for older backups)")
        return
    key_file = Path(settings.secrets.key_file)
    if not key_file.exists():
        raise UserInputError(f"there is no key file at {key_file}: nothing is encrypted yet",
                             source="secrets.key_file")
    old = read_key_file(key_file)
    new = generate_key()
    write_key_file(key_file, [new, *old])
    count = in_store(settings, work, create=False,
                     box=SecretBox([new, *old], source=f"key file {key_file}"))
    write_key_file(key_file, [new])
    typer.echo(f"re-encrypted {count} stored secrets with a new key in {key_file}; the old "
               f"key was removed from it (backups made before this need the old key)")
