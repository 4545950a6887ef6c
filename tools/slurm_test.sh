#!/usr/bin/env bash
# Evaluation on a slurm cluster, one task per GPU.
#   [GPUS=8] [GPUS_PER_NODE=8] [CPUS_PER_TASK=5] [SRUN_ARGS="..."] [PORT=29500] \
#   tools/slurm_test.sh PARTITION JOB_NAME CONFIG CHECKPOINT [test.py args]
set -e
source "$(dirname "$0")/dist_common.sh"
[ $# -ge 4 ] || fail "usage: tools/slurm_test.sh PARTITION JOB_NAME CONFIG CHECKPOINT [test.py args]"
PARTITION=$1
JOB_NAME=$2
CONFIG=$3
CHECKPOINT=$4
shift 4
require_file "config file" "$CONFIG"
require_file "checkpoint" "$CHECKPOINT"
srun_tool "$TOOLS/test.py" "$CONFIG" "$CHECKPOINT" "$@"
