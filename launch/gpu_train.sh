#!/usr/bin/env bash
# Train on GPUs: one process per node drives all of that node's GPUs.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

usage() {
  cat <<EOF
Usage: launch/gpu_train.sh --config configs/X.py --workdir DIR [options] [-- trainer flags]

Runs, from the repository root, in the foreground (exec, so signals reach it):
  python -m ghn_jax.train --config CONFIG --workdir WORKDIR [trainer flags]
JAX uses every visible GPU of the node from this one process.

Single node:   launch/gpu_train.sh --config C --workdir W
Multi-node:    run it on every node, same arguments, with NUM_NODES, NODE_RANK and
               COORDINATOR (host:port of node 0, reachable from all nodes); it sets
               GHN_JAX_DISTRIBUTED=1 GHN_JAX_COORDINATOR GHN_JAX_NUM_PROCESSES
               GHN_JAX_PROCESS_ID for the trainer's jax.distributed.initialize().
SLURM (srun):  nothing to set: under srun with more than one task it sets only
               GHN_JAX_DISTRIBUTED=1 and jax.distributed.initialize() reads SLURM's
               variables. See launch/slurm_gpu.sbatch.
With several processes, JAX_LOCAL_DEVICE_IDS is set to all local GPUs when each node
runs one task: JAX's SLURM/Open MPI detection would otherwise give every process only
the GPU of its local rank (i.e. GPU 0 when there is one task per node).

  --config FILE          CONFIG          trainer config, relative to the repository
  --workdir DIR          WORKDIR         checkpoints and metrics; multi-node: a gs:// path
                                         or a filesystem shared by all nodes
  --data-dir DIR         TFDS_DATA_DIR   TFDS data directory [the config's data.data_dir]
  --num-nodes N          NUM_NODES       [1; under srun the task count comes from SLURM]
  --node-rank I          NODE_RANK       0 .. N-1; 0 hosts the coordinator
  --coordinator H:P      COORDINATOR     [\$MASTER_ADDR:\$MASTER_PORT when those are set]
  --gpus LIST            CUDA_VISIBLE_DEVICES  GPUs to use on this node, e.g. 0,1,2,3 [all]
  --gpus-per-node N      GPUS_PER_NODE   local GPU count [counted from CUDA_VISIBLE_DEVICES,
                                         SLURM_GPUS_ON_NODE or nvidia-smi]
  --python PY            PYTHON          interpreter [python]
  --env KEY=VALUE                        more environment for the trainer (repeatable)
  --dry-run              DRY_RUN=1       print the command, run nothing
  -h, --help                             this help
Everything after '--' goes to the trainer, e.g. -- --config.batch_size=512

Examples:
  launch/gpu_train.sh --config configs/ghn3_t_cifar10.py --workdir runs/ghn3_t_c10
  # node 0 and node 1 of two (10.0.0.1 is node 0):
  NUM_NODES=2 NODE_RANK=0 COORDINATOR=10.0.0.1:12345 launch/gpu_train.sh --config C --workdir gs://B/R
  NUM_NODES=2 NODE_RANK=1 COORDINATOR=10.0.0.1:12345 launch/gpu_train.sh --config C --workdir gs://B/R
EOF
}

CONFIG=${CONFIG:-}
WORKDIR=${WORKDIR:-}
TFDS_DATA_DIR=${TFDS_DATA_DIR:-}
NUM_NODES=${NUM_NODES:-}
NODE_RANK=${NODE_RANK:-}
COORDINATOR=${COORDINATOR:-}
GPUS=${CUDA_VISIBLE_DEVICES:-}
GPUS_FLAG=0
GPUS_PER_NODE=${GPUS_PER_NODE:-}
PYTHON=${PYTHON:-python}
ENVS=()
TRAINER_ARGS=()
while [ $# -gt 0 ]; do
  case $1 in
    -h | --help) usage; exit 0 ;;
    --config | --config=*) opt_value "$@"; CONFIG=$OPT_VAL; shift "$OPT_SHIFT" ;;
    --workdir | --workdir=*) opt_value "$@"; WORKDIR=$OPT_VAL; shift "$OPT_SHIFT" ;;
    --data-dir | --data-dir=*) opt_value "$@"; TFDS_DATA_DIR=$OPT_VAL; shift "$OPT_SHIFT" ;;
    --num-nodes | --num-nodes=*) opt_value "$@"; NUM_NODES=$OPT_VAL; shift "$OPT_SHIFT" ;;
    --node-rank | --node-rank=*) opt_value "$@"; NODE_RANK=$OPT_VAL; shift "$OPT_SHIFT" ;;
    --coordinator | --coordinator=*) opt_value "$@"; COORDINATOR=$OPT_VAL; shift "$OPT_SHIFT" ;;
    --gpus | --gpus=*) opt_value "$@"; GPUS=$OPT_VAL; GPUS_FLAG=1; shift "$OPT_SHIFT" ;;
    --gpus-per-node | --gpus-per-node=*) opt_value "$@"; GPUS_PER_NODE=$OPT_VAL; shift "$OPT_SHIFT" ;;
    --python | --python=*) opt_value "$@"; PYTHON=$OPT_VAL; shift "$OPT_SHIFT" ;;
    --env | --env=*) opt_value "$@"; require_env_assignment "$OPT_VAL"; ENVS+=("$OPT_VAL"); shift "$OPT_SHIFT" ;;
    --dry-run) DRY_RUN=1; shift ;;
    --) shift; TRAINER_ARGS=("$@"); break ;;
    -*) die "unknown option '$1' (see --help)" ;;
    *) die "unexpected argument '$1' (see --help)" ;;
  esac
done

require "$CONFIG" "--config (or CONFIG)" "e.g. --config configs/ghn3_t_cifar10.py"
require "$WORKDIR" "--workdir (or WORKDIR)"

# How the processes find each other.
#   single:   one process, no jax.distributed
#   explicit: NUM_NODES > 1, GHN_JAX_* set from NUM_NODES/NODE_RANK/COORDINATOR
#   slurm:    srun started several tasks; jax.distributed.initialize() auto-detects
SLURM_TASKS=${SLURM_NTASKS:-}
in_srun=0
if [ -n "${SLURM_JOB_ID:-}" ] && [ -n "${SLURM_STEP_NODELIST:-}" ] && [ -n "${SLURM_PROCID:-}" ] && [ -n "${SLURM_LOCALID:-}" ]; then
  in_srun=1
fi
if [ "$in_srun" = 1 ] && is_uint "$SLURM_TASKS" && [ "$SLURM_TASKS" -gt 1 ] && [ -z "$NUM_NODES" ]; then
  MODE=slurm
else
  if [ "$in_srun" = 0 ] && is_uint "$SLURM_TASKS" && [ "$SLURM_TASKS" -gt 1 ] && [ -z "$NUM_NODES" ]; then
    warn "SLURM job with $SLURM_TASKS tasks but not started by srun: running one process here (start it with srun)"
  fi
  NUM_NODES=${NUM_NODES:-1}
  require_uint "$NUM_NODES" "NUM_NODES (--num-nodes)"
  [ "$NUM_NODES" -ge 1 ] || die "NUM_NODES (--num-nodes) must be at least 1"
  if [ "$NUM_NODES" -eq 1 ]; then MODE=single; else MODE=explicit; fi
fi

envs=()
if [ "$MODE" = explicit ]; then
  require "$NODE_RANK" "NODE_RANK (--node-rank)" "NUM_NODES=$NUM_NODES, so each node needs its rank 0..$((NUM_NODES - 1))"
  require_uint "$NODE_RANK" "NODE_RANK (--node-rank)"
  [ "$NODE_RANK" -lt "$NUM_NODES" ] || die "NODE_RANK must be in 0..$((NUM_NODES - 1)), got $NODE_RANK"
  if [ -z "$COORDINATOR" ] && [ -n "${MASTER_ADDR:-}" ] && [ -n "${MASTER_PORT:-}" ]; then
    COORDINATOR="$MASTER_ADDR:$MASTER_PORT"
  fi
  require "$COORDINATOR" "COORDINATOR (--coordinator)" "NUM_NODES=$NUM_NODES, so give host:port of node 0, the same on every node"
  require_hostport "$COORDINATOR" "COORDINATOR (--coordinator)"
  envs+=(GHN_JAX_DISTRIBUTED=1 "GHN_JAX_COORDINATOR=$COORDINATOR" "GHN_JAX_NUM_PROCESSES=$NUM_NODES" "GHN_JAX_PROCESS_ID=$NODE_RANK")
elif [ "$MODE" = slurm ]; then
  envs+=(GHN_JAX_DISTRIBUTED=1)
fi
if [ "$MODE" != single ]; then
  case $WORKDIR in
    gs://?* | /*) ;;
    *) die "--workdir '$WORKDIR' is relative: with several nodes it must be gs:// or an absolute path on a shared filesystem" ;;
  esac
fi

if [ "$GPUS_FLAG" = 1 ]; then
  [ -n "$GPUS" ] || die "--gpus needs a list of GPUs, e.g. 0,1,2,3"
  envs+=("CUDA_VISIBLE_DEVICES=$GPUS")
fi

# One task per node -> JAX_LOCAL_DEVICE_IDS = every local GPU (see --help).
tasks_per_node=1
if [ "$MODE" = slurm ]; then
  tasks_per_node=${SLURM_NTASKS_PER_NODE:-${SLURM_STEP_TASKS_PER_NODE:-1}}
  tasks_per_node=${tasks_per_node%%(*}
  tasks_per_node=${tasks_per_node%%,*}
fi
if [ "$MODE" != single ] && [ "$tasks_per_node" = 1 ] && [ -z "${JAX_LOCAL_DEVICE_IDS:-}" ]; then
  count=$GPUS_PER_NODE
  if [ -z "$count" ] && [ -n "$GPUS" ]; then
    count=$(printf '%s' "$GPUS" | tr ',' '\n' | grep -c .) || true
  fi
  if [ -z "$count" ] && is_uint "${SLURM_GPUS_ON_NODE:-}"; then count=$SLURM_GPUS_ON_NODE; fi
  if [ -z "$count" ] && command -v nvidia-smi >/dev/null 2>&1; then
    count=$(nvidia-smi -L 2>/dev/null | grep -c '^GPU ') || true
  fi
  if is_uint "$count" && [ "$count" -gt 0 ]; then
    ids=0
    i=1
    while [ "$i" -lt "$count" ]; do ids="$ids,$i"; i=$((i + 1)); done
    envs+=("JAX_LOCAL_DEVICE_IDS=$ids")
  elif [ -n "${SLURM_JOB_ID:-}${OMPI_COMM_WORLD_SIZE:-}" ]; then
    warn "could not count this node's GPUs: set GPUS_PER_NODE, or JAX may use only one GPU per node"
  fi
fi

if [ -n "$TFDS_DATA_DIR" ]; then envs+=("TFDS_DATA_DIR=$TFDS_DATA_DIR"); fi
envs+=(${ENVS[@]+"${ENVS[@]}"})

check_config "$CONFIG"
case $MODE in
  single) note "single process on this node's GPUs" ;;
  explicit) note "node $NODE_RANK of $NUM_NODES, coordinator $COORDINATOR" ;;
  slurm) note "SLURM task ${SLURM_PROCID:-?} of $SLURM_TASKS (jax.distributed auto-detection)" ;;
esac
need_cmd "$PYTHON" "activate the environment with ghn_jax installed, or pass --python"
print_cmd cd "$REPO_ROOT"
cd "$REPO_ROOT"
cmd=("$PYTHON" -m ghn_jax.train --config "$CONFIG" --workdir "$WORKDIR" ${TRAINER_ARGS[@]+"${TRAINER_ARGS[@]}"})
if [ "${#envs[@]}" -gt 0 ]; then cmd=(env "${envs[@]}" "${cmd[@]}"); fi
run_exec "${cmd[@]}"
