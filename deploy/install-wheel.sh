#!/bin/sh
# Install m365pbx from a built wheel into a new virtual environment, every dependency pinned to
# the version in requirements.lock. Used by the Containerfile, by hand for /opt/m365pbx (see
# docs/operations.md), and by CI (.ci/wheel-smoke), so that all three install the same way.
#   install-wheel.sh VENV WHEEL_DIR REQUIREMENTS_LOCK
set -eu
venv=$1 wheels=$2 lock=$3
python3 -m venv "$venv"
constraints=$(mktemp)
trap 'rm -f "$constraints"' EXIT
# pip refuses hashes in a constraints file: keep the pins only.
grep -E '^[A-Za-z0-9_.-]+==' "$lock" | sed 's/ *\\$//' > "$constraints"
"$venv/bin/pip" install --quiet --no-cache-dir --constraint "$constraints" "$wheels"/m365pbx-*.whl
"$venv/bin/m365pbx" --version
