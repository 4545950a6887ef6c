#!/usr/bin/env bash
# The project's test command: install whatever is missing, then run the suite.
#
#   bash tools/run_tests.sh [pytest args]
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
bash tools/setup_env.sh
exec "${PYTHON:-python3}" -m pytest tests -q --durations=15 "$@"
