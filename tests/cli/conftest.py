import pytest
from typer.testing import CliRunner

from m365pbx.cli.app import _register


@pytest.fixture
def cli() -> CliRunner:
    """A runner for `m365pbx` with every command registered."""
    _register()
    return CliRunner()
