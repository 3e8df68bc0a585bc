#!/usr/bin/env bash
# Start ghn_jax.train on every worker of the slice, detached from the ssh session.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

usage() {
  cat <<EOF
Usage: launch/tpu_train.sh --config configs/X.py --workdir gs://BUCKET/RUN [options] [-- trainer flags]

Starts on every worker (--worker=all), with GHN_JAX_DISTRIBUTED=1 so that the trainer
calls jax.distributed.initialize() (which finds the other workers by itself on Cloud TPU):
  python -m ghn_jax.train --config CONFIG --workdir WORKDIR [trainer flags]
The job runs under setsid + nohup, so closing ssh does not stop it. Each worker writes
~/\$REMOTE_LOG_DIR/train.log (appended), train.pid, and train.rc (exit status) at the end.
Restarting with the same --workdir resumes from its latest checkpoint.

  --config FILE        CONFIG          trainer config, relative to the repository
  --workdir gs://...   WORKDIR         checkpoints, metrics.jsonl, TensorBoard events;
                                       must be shared by all workers, so gs://
  --data-dir DIR       TFDS_DATA_DIR   TFDS data directory, e.g. gs://BUCKET/tensorflow_datasets
                                       [unset: the config's data.data_dir]
  --env KEY=VALUE                      more environment for the trainer (repeatable),
                                       e.g. --env XLA_FLAGS=... --env LIBTPU_INIT_ARGS=...
  --restart                            stop a running job first (SIGTERM, then SIGKILL after 60 s)
  --allow-local-workdir                accept a non-gs:// workdir (single-host slices only;
                                       it is lost with the VM)
  -h, --help                           this help
Everything after '--' goes to the trainer, e.g. -- --config.batch_size=1024

$TPU_COMMON_HELP

Example:
  TFDS_DATA_DIR=gs://my-bucket/tensorflow_datasets launch/tpu_train.sh \\
      --config configs/ghn3_t_imagenet.py --workdir gs://my-bucket/ghn3_t/run1
EOF
}

CONFIG=${CONFIG:-}
WORKDIR=${WORKDIR:-}
TFDS_DATA_DIR=${TFDS_DATA_DIR:-}
RESTART=0
ALLOW_LOCAL=0
ENVS=()
TRAINER_ARGS=()
while [ $# -gt 0 ]; do
  case $1 in
    -h | --help) usage; exit 0 ;;
    --config | --config=*) opt_value "$@"; CONFIG=$OPT_VAL; shift "$OPT_SHIFT" ;;
    --workdir | --workdir=*) opt_value "$@"; WORKDIR=$OPT_VAL; shift "$OPT_SHIFT" ;;
    --data-dir | --data-dir=*) opt_value "$@"; TFDS_DATA_DIR=$OPT_VAL; shift "$OPT_SHIFT" ;;
    --env | --env=*) opt_value "$@"; require_env_assignment "$OPT_VAL"; ENVS+=("$OPT_VAL"); shift "$OPT_SHIFT" ;;
    --restart) RESTART=1; shift ;;
    --allow-local-workdir) ALLOW_LOCAL=1; shift ;;
    --) shift; TRAINER_ARGS=("$@"); break ;;
    *) tpu_common_opt "$@"; shift "$OPT_SHIFT" ;;
  esac
done

tpu_defaults
require "$CONFIG" "--config (or CONFIG)" "e.g. --config configs/ghn3_t_imagenet.py"
require "$WORKDIR" "--workdir (or WORKDIR)" "e.g. --workdir gs://my-bucket/ghn3_t/run1"
if [ "$ALLOW_LOCAL" = 0 ]; then
  require_gs "$WORKDIR" "--workdir" "every worker writes checkpoints there; --allow-local-workdir for a single-host slice"
fi
check_config "$CONFIG"
if [ -n "$TFDS_DATA_DIR" ]; then
  case $TFDS_DATA_DIR in
    gs://?*) ;;
    *) warn "TFDS_DATA_DIR '$TFDS_DATA_DIR' is not gs://: it must exist on every worker" ;;
  esac
else
  note "TFDS_DATA_DIR not set: the trainer uses the config's data.data_dir"
fi
need_gcloud

DIR=$(rpath "$REMOTE_DIR")
LOG=$(rpath "$REMOTE_LOG_DIR")
VENV=$(rpath "$REMOTE_VENV")

# The job, as run by `bash -c` on each worker.
envs=(GHN_JAX_DISTRIBUTED=1)
if [ -n "$TFDS_DATA_DIR" ]; then envs+=("TFDS_DATA_DIR=$TFDS_DATA_DIR"); fi
envs+=(${ENVS[@]+"${ENVS[@]}"})
train=$(quote_cmd env "${envs[@]}" python -m ghn_jax.train --config "$CONFIG" --workdir "$WORKDIR" \
  ${TRAINER_ARGS[@]+"${TRAINER_ARGS[@]}"})
job="echo \$\$ > $LOG/train.pid; . $VENV/bin/activate && $train; echo \$? > $LOG/train.rc"

if [ "$RESTART" = 1 ]; then
  guard=$(remote_stop)
else
  guard="if $(remote_is_running); then echo \"error: ghn_jax.train already runs on \$(hostname) (pid \$(cat $LOG/train.pid)); use --restart\" >&2; exit 3; fi"
fi
installed="if [ ! -d $DIR ] || [ ! -x $VENV/bin/python ]; then echo \"error: \$(hostname): no $REMOTE_DIR or $REMOTE_VENV; run launch/tpu_install.sh\" >&2; exit 4; fi"
remote="set -e; $installed; mkdir -p $LOG; cd $DIR; $guard; rm -f $LOG/train.rc"
remote="$remote; echo \"=== \$(date -u +%Y-%m-%dT%H:%M:%SZ) \$(hostname) start\" >> $LOG/train.log"
remote="$remote; setsid nohup bash -c $(shquote "$job") >> $LOG/train.log 2>&1 < /dev/null &"
remote="$remote echo \$! > $LOG/train.pid; echo \"\$(hostname): started pid \$!, log $(rpath_text "$REMOTE_LOG_DIR")/train.log\""

note "starting training on all workers of $TPU_NAME: $CONFIG -> $WORKDIR"
tpu_ssh_cmd all "$remote"
run "${GC[@]}"
note "follow it with: launch/tpu_logs.sh --name $TPU_NAME --zone $ZONE"
