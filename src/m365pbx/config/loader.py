"""`load_config`: the YAML file plus environment overrides, checked, with every problem named."""

from __future__ import annotations

import os
from collections.abc import Mapping
from importlib import resources
from pathlib import Path

from pydantic import ValidationError

from m365pbx.config.environment import CONFIG_ENV_VAR, read_overrides
from m365pbx.config.environment import merge as merge_overrides
from m365pbx.config.errors import ConfigError, KeyPath, Problem, format_path
from m365pbx.config.explain import explain
from m365pbx.config.models import Settings
from m365pbx.config.references import reference_problems
from m365pbx.config.secrets import resolving_with
from m365pbx.config.yamlfile import Document, read_document

DEFAULT_CONFIG_FILE = Path("m365pbx.yaml")
"""Read when no file is named and M365PBX_CONFIG is not set (in the working directory)."""


def find_config_file(path: Path | None, environ: Mapping[str, str]) -> Path | None:
    """Return the file to read: `path`, else $M365PBX_CONFIG, else ./m365pbx.yaml if present."""
    if path is not None:
        return path
    if environ.get(CONFIG_ENV_VAR):
        return Path(environ[CONFIG_ENV_VAR])
    return DEFAULT_CONFIG_FILE if DEFAULT_CONFIG_FILE.is_file() else None


def load_config(path: Path | None = None, *, environ: Mapping[str, str] | None = None) -> (
    Settings
):
    """Read, merge and check the configuration; ConfigError lists every problem found."""
    env = os.environ if environ is None else environ
    file = find_config_file(path, env)
    document = read_document(file) if file is not None else Document(None)
    overrides = read_overrides(Settings, env)
    merged, merge_problems = merge_overrides(document.data, overrides.data)

    def locate(key_path: KeyPath, message: str, *, from_environment: bool = False) -> Problem:
        variable = overrides.variable_for(key_path, below=from_environment)
        if variable is not None:
            return Problem(message, format_path(key_path), f"environment variable {variable}")
        return Problem(message, format_path(key_path), document.source, _line(document, key_path))

    problems = [*document.problems, *overrides.problems]
    problems += [locate(path, message, from_environment=True) for path, message in merge_problems]
    references = [locate(key_path, message) for key_path, message in reference_problems(merged)]
    problems += references
    settings = None
    try:
        with resolving_with(env):
            settings = Settings(**merged)
    except ValidationError as exc:
        problems += explain(exc, Settings, merged, locate, references_reported=bool(references))
    if problems or settings is None:
        raise ConfigError(
            _in_file_order(problems, document.source),
            source=document.source,
            warnings=overrides.warnings,
        )
    settings._source_file = file
    settings._warnings = [*overrides.warnings, *_file_warnings(settings)]
    return settings


def example_config_text() -> str:
    """Return the commented example configuration shipped with m365pbx."""
    return resources.files("m365pbx").joinpath("config.example.yaml").read_text(encoding="utf-8")


def _line(document: Document, path: KeyPath) -> int | None:
    for length in range(len(path), 0, -1):
        if (line := document.lines.get(path[:length])) is not None:
            return line
    return None


def _in_file_order(problems: list[Problem], source: str | None) -> list[Problem]:
    return sorted(problems, key=lambda p: (p.source != source, p.source or "", p.line or 0))


def _file_warnings(settings: Settings) -> list[str]:
    warnings = []
    if settings.public_url is not None and settings.public_url.scheme == "http":
        # Accepted only on loopback (the simulator, tests): Microsoft never delivers there.
        warnings.append(
            f"public_url: {settings.public_url} is plain http on this machine: only m365sim "
            "delivers notifications there; Microsoft Graph needs a public https:// URL"
        )
    for t, tenant in enumerate(settings.tenants):
        for c, credential in enumerate(tenant.credentials):
            certificate = credential.certificate_file
            if certificate is not None and not certificate.is_file():
                warnings.append(
                    f"tenants[{t}].credentials[{c}].certificate_file: {certificate} does not "
                    "exist (yet); m365pbx needs it to sign in with this credential"
                )
    return warnings
