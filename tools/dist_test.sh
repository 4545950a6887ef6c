#!/usr/bin/env bash
# Distributed evaluation with torchrun.
#   tools/dist_test.sh CONFIG CHECKPOINT GPUS [test.py args]
# Multi-node: NNODES, NODE_RANK, MASTER_ADDR, PORT as for dist_train.sh.
set -e
source "$(dirname "$0")/dist_common.sh"
[ $# -ge 3 ] || fail "usage: tools/dist_test.sh CONFIG CHECKPOINT GPUS [test.py args]"
CONFIG=$1
CHECKPOINT=$2
GPUS=$3
shift 3
require_file "config file" "$CONFIG"
require_file "checkpoint" "$CHECKPOINT"
check_nproc "$GPUS"
preflight "$TOOLS/test.py" "$CONFIG" "$CHECKPOINT" "$@"
torchrun_tool "$TOOLS/test.py" "$CONFIG" "$CHECKPOINT" --launcher pytorch "$@"
