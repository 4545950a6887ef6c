# Shared by dist_train.sh, dist_test.sh, slurm_train.sh and slurm_test.sh
# (sourced, not run). Honours NNODES, NODE_RANK, MASTER_ADDR, PORT, PYTHON.
TOOLS=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
PYTHON=${PYTHON:-python3}
NNODES=${NNODES:-1}
NODE_RANK=${NODE_RANK:-0}
PORT=${PORT:-29500}
MASTER_ADDR=${MASTER_ADDR:-127.0.0.1}

fail() {
    echo "error: $*" >&2
    exit 2
}

require_file() {  # require_file WHAT PATH
    [ -f "$2" ] || fail "$1 \"$2\" does not exist. Check the path (configs \
live in configs/, e.g. configs/repvgg-a0_8xb32_in1k.py)."
}

# check_nproc N: this node can run N processes (one per GPU; without a GPU,
# one per CPU core, as `nproc` counts them).
check_nproc() {
    [[ "$1" =~ ^[1-9][0-9]*$ ]] || fail "GPUS must be a positive number of \
processes per node, got \"$1\"."
    local avail kind
    avail=$("$PYTHON" -c 'import torch; print(torch.cuda.device_count() if torch.cuda.is_available() else 0)') \
        || fail "cannot import torch with $PYTHON; set PYTHON=/path/to/python."
    kind=GPUs
    if [ "$avail" -eq 0 ]; then
        avail=$(env -u OMP_NUM_THREADS -u OMP_THREAD_LIMIT nproc)
        kind="CPU cores (no GPU found; CPU processes use the gloo backend)"
    fi
    [ "$1" -le "$avail" ] || fail "GPUS=$1 processes were asked for on this \
node, but it has only $avail $kind. Use GPUS <= $avail, or spread the job \
over several machines with NNODES, NODE_RANK and MASTER_ADDR (see \
README.md)."
}

# preflight TOOL ARGS...: check the config, arch and data paths once, in a
# single process, so a mistake gives one clear error instead of one per rank
# plus torchrun's failure report.
preflight() {
    "$PYTHON" "$@" --check-only >/dev/null || exit $?
}

# torchrun TOOL ARGS...: GPUS processes on this node (nccl on GPUs, gloo on
# CPUs -- chosen by the tool).
torchrun_tool() {
    exec "$PYTHON" -m torch.distributed.run \
        --nnodes="$NNODES" \
        --node_rank="$NODE_RANK" \
        --master_addr="$MASTER_ADDR" \
        --master_port="$PORT" \
        --nproc_per_node="$GPUS" \
        "$@"
}

# srun_tool TOOL ARGS...: one task per GPU on a slurm cluster.
srun_tool() {
    local GPUS=${GPUS:-8}
    local GPUS_PER_NODE=${GPUS_PER_NODE:-$((GPUS < 8 ? GPUS : 8))}
    local CPUS_PER_TASK=${CPUS_PER_TASK:-5}
    export MASTER_PORT=$PORT
    # shellcheck disable=SC2086  # SRUN_ARGS holds several words
    exec srun -p "$PARTITION" \
        --job-name="$JOB_NAME" \
        --gres=gpu:"$GPUS_PER_NODE" \
        --ntasks="$GPUS" \
        --ntasks-per-node="$GPUS_PER_NODE" \
        --cpus-per-task="$CPUS_PER_TASK" \
        --kill-on-bad-exit=1 \
        ${SRUN_ARGS:-} \
        "$PYTHON" -u "$@" --launcher=slurm
}
