#!/usr/bin/env bash
# Follow the training log of worker 0 (or of all workers), or show whether training runs.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

usage() {
  cat <<EOF
Usage: launch/tpu_logs.sh [options]

Shows ~/\$REMOTE_LOG_DIR/train.log of the workers (tail -F; Ctrl-C stops following,
not training). Process 0 (worker 0) is the one that normally logs progress; with
--worker all every line is prefixed with the worker's host name.

  --worker W       0, another worker index, or all [0]
  --lines N        lines of history to show first [100]
  --no-follow      print and exit
  --status         print, per worker, one of: RUNNING, EXITED <status>, STOPPED (not
                   running, no exit status: killed or the VM restarted), NOT_INSTALLED
  -h, --help       this help

$TPU_COMMON_HELP

Metrics and checkpoints are in the workdir, e.g.: tensorboard --logdir gs://BUCKET/RUN
EOF
}

WORKER=0
LINES=100
FOLLOW=1
STATUS=0
while [ $# -gt 0 ]; do
  case $1 in
    -h | --help) usage; exit 0 ;;
    --worker | --worker=*) opt_value "$@"; WORKER=$OPT_VAL; shift "$OPT_SHIFT" ;;
    --lines | --lines=*) opt_value "$@"; LINES=$OPT_VAL; shift "$OPT_SHIFT" ;;
    --no-follow) FOLLOW=0; shift ;;
    --status) STATUS=1; shift ;;
    *) tpu_common_opt "$@"; shift "$OPT_SHIFT" ;;
  esac
done

tpu_defaults
[ "$WORKER" = all ] || is_uint "$WORKER" || die "--worker must be 'all' or a worker index, got '$WORKER'"
require_uint "$LINES" "--lines"
need_gcloud

LOG=$(rpath "$REMOTE_LOG_DIR")
if [ "$STATUS" = 1 ]; then
  remote="s=\$($(remote_status)); echo \"\$(hostname): \$s\""
else
  if [ "$FOLLOW" = 1 ]; then tail_cmd="tail -n $LINES -F $LOG/train.log"; else tail_cmd="tail -n $LINES $LOG/train.log"; fi
  if [ "$WORKER" = all ]; then
    remote="$tail_cmd 2>&1 | sed -u \"s/^/[\$(hostname)] /\""
  else
    remote="$tail_cmd"
  fi
fi
tpu_ssh_cmd "$WORKER" "$remote"
run "${GC[@]}"
