#!/usr/bin/env bash
# Set up .venv (scripts/setup_env.sh) and run the whole test suite. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh
# shellcheck disable=SC1091
. "${VENV:-.venv}/bin/activate"
# pytest exits 5 when it collected no test: that is a failure here, never a green run.
python -m pytest "$@"
