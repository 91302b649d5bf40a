#!/usr/bin/env bash
# Set up .venv (scripts/setup_env.sh) and run the whole test suite. Extra arguments go to pytest.
#
# The tests run in parallel (pytest-xdist, one worker per core up to 8, BISENET_TEST_WORKERS
# overrides; 1 runs them in this process), a test file per worker: the files' module fixtures (a
# served model, an engine) are made once and their tests keep their order. Arguments that choose
# the workers themselves (-n, -p no:xdist) win.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh
# shellcheck disable=SC1091
. "${VENV:-.venv}/bin/activate"
workers=${BISENET_TEST_WORKERS:-$(python -c 'import os; print(min(8, len(os.sched_getaffinity(0))))')}
parallel=()
case " $* " in
    *" -n "* | *" -n"[0-9a]* | *" --numprocesses"* | *"no:xdist"*) ;;
    *) if [ "$workers" -gt 1 ] && python -c 'import xdist' 2>/dev/null; then
           parallel=(-n "$workers" --dist loadfile)
       fi ;;
esac
# pytest exits 5 when it collected no test: that is a failure here, never a green run.
python -m pytest "${parallel[@]}" "$@"
