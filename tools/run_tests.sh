#!/usr/bin/env bash
# The project's test command: install whatever is missing, then run the suite.
#
#   bash tools/run_tests.sh [pytest args]
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
bash tools/setup_env.sh
# the files on two processes (pytest-xdist; a file's tests stay together,
# sharing their module fixtures): most tests run one thread, so two cores
# finish the suite in about half the time. TEST_WORKERS=0: one process.
exec "${PYTHON:-python3}" -m pytest tests -q --durations=15 \
    -n "${TEST_WORKERS:-2}" --dist loadfile "$@"
