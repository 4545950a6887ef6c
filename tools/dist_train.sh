#!/usr/bin/env bash
# Distributed training on one or more machines with torchrun.
#   tools/dist_train.sh CONFIG GPUS [train.py args]
# GPUS: processes on this machine (one per GPU; without GPUs, CPU processes
# with the gloo backend). Several machines: run it on each with
#   NNODES=2 NODE_RANK=0|1 MASTER_ADDR=<ip of node 0> PORT=29500
set -e
source "$(dirname "$0")/dist_common.sh"
[ $# -ge 2 ] || fail "usage: tools/dist_train.sh CONFIG GPUS [train.py args]"
CONFIG=$1
GPUS=$2
shift 2
require_file "config file" "$CONFIG"
check_nproc "$GPUS"
preflight "$TOOLS/train.py" "$CONFIG" "$@"
torchrun_tool "$TOOLS/train.py" "$CONFIG" --launcher pytorch "$@"
