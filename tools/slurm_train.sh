#!/usr/bin/env bash
# Training on a slurm cluster, one task per GPU.
#   [GPUS=8] [GPUS_PER_NODE=8] [CPUS_PER_TASK=5] [SRUN_ARGS="..."] [PORT=29500] \
#   tools/slurm_train.sh PARTITION JOB_NAME CONFIG WORK_DIR [train.py args]
# e.g. GPUS=16 tools/slurm_train.sh gpu repvgg-b1 \
#        configs/repvgg-b1_8xb32_in1k.py work_dirs/repvgg-b1 --auto-scale-lr
set -e
source "$(dirname "$0")/dist_common.sh"
[ $# -ge 4 ] || fail "usage: tools/slurm_train.sh PARTITION JOB_NAME CONFIG WORK_DIR [train.py args]"
PARTITION=$1
JOB_NAME=$2
CONFIG=$3
WORK_DIR=$4
shift 4
require_file "config file" "$CONFIG"
srun_tool "$TOOLS/train.py" "$CONFIG" --work-dir="$WORK_DIR" "$@"
