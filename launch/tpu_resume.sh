#!/usr/bin/env bash
# Watchdog: keep a training run alive through preemptions, until it finishes.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

usage() {
  cat <<EOF
Usage: launch/tpu_resume.sh --config configs/X.py --workdir gs://BUCKET/RUN [options] [-- trainer flags]

Polls the slice and the training job and repairs what it finds:
  slice READY, job running on all workers  -> nothing (sleep)
  slice READY, nothing installed           -> tpu_install.sh, then tpu_train.sh
  slice READY, job exited != 0 or vanished -> show worker 0's log tail, tpu_train.sh --restart
  slice READY, job exited 0 on all workers -> done: exit 0 (--teardown-when-done deletes it)
  slice PREEMPTED/TERMINATED/STOPPED/gone,
    or queued resource SUSPENDED/FAILED    -> tpu_teardown.sh, tpu_create.sh, and once READY
                                              tpu_install.sh + tpu_train.sh
  slice being created/repaired/queued      -> wait
The trainer resumes from the latest checkpoint in the (same) workdir, so a restart loses
at most the steps since that checkpoint. Start it where it can outlive your laptop
(tmux/screen on a small always-on VM) and log its output, e.g.
  nohup launch/tpu_resume.sh --spot --config ... --workdir ... >> resume.log 2>&1 &
It can also start the run from nothing: with no slice it creates one.

Watchdog:
  --poll S               seconds between polls [120]
  --max-retries N        give up (exit 1) after N recoveries in a row [20]; the count goes
                         back to 0 after --retry-reset seconds of healthy training
  --retry-reset S        [3600]
  --max-unknown N        give up after N polls in a row that could not read the state [10]
  --max-polls N          stop after N polls, 0 = until done [0; 1 with DRY_RUN=1]
  --teardown-when-done   delete the slice when training has finished
Passed on to tpu_create.sh: --spot, --preemptible, --reserved
Passed on to tpu_install.sh: --source, --repo-url, --ref
Passed on to tpu_train.sh: --config, --workdir, --data-dir, --env KEY=VALUE, -- trainer flags
  -h, --help             this help

$TPU_COMMON_HELP
DRY_RUN=1 fakes the answers: DRY_RUN_TPU_STATE (raw slice state, e.g. PREEMPTED;
default READY, or ACTIVE with --queued) and DRY_RUN_TRAIN_STATUS (RUNNING, STOPPED,
NOT_INSTALLED or 'EXITED <n>'; default RUNNING).
EOF
}

POLL=120
MAX_RETRIES=20
RETRY_RESET=3600
MAX_UNKNOWN=10
MAX_POLLS=""
TEARDOWN_WHEN_DONE=0
CREATE_ARGS=()
INSTALL_ARGS=()
TRAIN_ARGS=()
TRAINER_ARGS=()
CONFIG=${CONFIG:-}
WORKDIR=${WORKDIR:-}
while [ $# -gt 0 ]; do
  case $1 in
    -h | --help) usage; exit 0 ;;
    --poll | --poll=*) opt_value "$@"; POLL=$OPT_VAL; shift "$OPT_SHIFT" ;;
    --max-retries | --max-retries=*) opt_value "$@"; MAX_RETRIES=$OPT_VAL; shift "$OPT_SHIFT" ;;
    --retry-reset | --retry-reset=*) opt_value "$@"; RETRY_RESET=$OPT_VAL; shift "$OPT_SHIFT" ;;
    --max-unknown | --max-unknown=*) opt_value "$@"; MAX_UNKNOWN=$OPT_VAL; shift "$OPT_SHIFT" ;;
    --max-polls | --max-polls=*) opt_value "$@"; MAX_POLLS=$OPT_VAL; shift "$OPT_SHIFT" ;;
    --teardown-when-done) TEARDOWN_WHEN_DONE=1; shift ;;
    --spot | --preemptible | --reserved) CREATE_ARGS+=("$1"); shift ;;
    --source | --source=* | --repo-url | --repo-url=* | --ref | --ref=*)
      opt_value "$@"; INSTALL_ARGS+=("${1%%=*}" "$OPT_VAL"); shift "$OPT_SHIFT" ;;
    --config | --config=*) opt_value "$@"; CONFIG=$OPT_VAL; shift "$OPT_SHIFT" ;;
    --workdir | --workdir=*) opt_value "$@"; WORKDIR=$OPT_VAL; shift "$OPT_SHIFT" ;;
    --data-dir | --data-dir=* | --env | --env=*)
      opt_value "$@"; TRAIN_ARGS+=("${1%%=*}" "$OPT_VAL"); shift "$OPT_SHIFT" ;;
    --) shift; TRAINER_ARGS=("$@"); break ;;
    *) tpu_common_opt "$@"; shift "$OPT_SHIFT" ;;
  esac
done

tpu_defaults
require "$CONFIG" "--config (or CONFIG)"
require "$WORKDIR" "--workdir (or WORKDIR)"
require_gs "$WORKDIR" "--workdir" "a restarted slice must find the checkpoints there"
for v in "$POLL:--poll" "$MAX_RETRIES:--max-retries" "$RETRY_RESET:--retry-reset" "$MAX_UNKNOWN:--max-unknown"; do
  require_uint "${v%%:*}" "${v#*:}"
done
if [ -z "$MAX_POLLS" ]; then
  if is_dry_run; then MAX_POLLS=1; else MAX_POLLS=0; fi
fi
require_uint "$MAX_POLLS" "--max-polls"
if [ "$QUEUED" = 1 ] && [ "${#CREATE_ARGS[@]}" -gt 0 ] && [ "${CREATE_ARGS[0]}" = --preemptible ]; then
  die "queued resources take --spot, not --preemptible"
fi
need_gcloud
export DRY_RUN

# The slice selection, passed on to every sub-script.
SLICE=(--name "$TPU_NAME" --zone "$ZONE" --accelerator "$ACCELERATOR" --version "$RUNTIME_VERSION")
if [ -n "$PROJECT" ]; then SLICE+=(--project "$PROJECT"); fi
if [ "$QUEUED" = 1 ]; then SLICE+=(--queued --qr-name "$QR_NAME"); fi

log() { note "$(date -u +%Y-%m-%dT%H:%M:%SZ) $*"; }

sub() {  # sub SCRIPT ARGS...: run launch/SCRIPT with the slice selection
  local script=$1
  shift
  log "-> $script"
  bash "$LAUNCH_DIR/$script" "${SLICE[@]}" "$@"
}

do_create() { sub tpu_create.sh ${CREATE_ARGS[@]+"${CREATE_ARGS[@]}"}; }
do_install() { sub tpu_install.sh ${INSTALL_ARGS[@]+"${INSTALL_ARGS[@]}"}; }
do_train() {  # do_train [--restart]
  sub tpu_train.sh --config "$CONFIG" --workdir "$WORKDIR" "$@" \
    ${TRAIN_ARGS[@]+"${TRAIN_ARGS[@]}"} -- ${TRAINER_ARGS[@]+"${TRAINER_ARGS[@]}"}
}
do_teardown() { sub tpu_teardown.sh --yes; }

RETRIES=0
recovery() {  # counts one recovery; gives up past --max-retries
  RETRIES=$((RETRIES + 1))
  if [ "$RETRIES" -gt "$MAX_RETRIES" ]; then
    fail "giving up after $MAX_RETRIES recoveries without ${RETRY_RESET}s of healthy training (last: $1); the slice is left as it is"
  fi
  log "recovery $RETRIES/$MAX_RETRIES: $1"
}

# Training status over all workers: RUNNING | DONE | NOT_INSTALLED | FAILED:<detail> | UNREACHABLE
train_status() {
  local out rc=0 line st any_running=0 all_done=1 n=0 failed="" not_installed=0
  tpu_ssh_cmd all "s=\$($(remote_status)); echo \"\$(hostname): \$s\""
  out=$(query "dry-run-worker-0: ${DRY_RUN_TRAIN_STATUS:-RUNNING}" "${GC[@]}") || rc=$?
  if [ "$rc" -ne 0 ]; then echo UNREACHABLE; return 0; fi
  while IFS= read -r line; do
    st=${line##*: }
    case $st in
      RUNNING) any_running=1; all_done=0 ;;
      "EXITED 0") ;;
      NOT_INSTALLED) not_installed=1; all_done=0 ;;
      "EXITED "* | STOPPED) failed="$line"; all_done=0 ;;
      *) continue ;;
    esac
    n=$((n + 1))
  done <<<"$out"
  if [ "$n" -eq 0 ]; then
    echo UNREACHABLE
  elif [ "$not_installed" = 1 ]; then
    echo NOT_INSTALLED
  elif [ -n "$failed" ]; then
    echo "FAILED:$failed"
  elif [ "$any_running" = 1 ]; then
    echo RUNNING
  elif [ "$all_done" = 1 ]; then
    echo DONE
  else
    echo UNREACHABLE
  fi
}

setup_and_train() {
  if ! do_install; then recovery "tpu_install.sh failed"; return 0; fi
  if ! do_train --restart; then recovery "tpu_train.sh failed"; fi
}

what="$TPU_NAME ($ACCELERATOR, $ZONE)"
if [ "$QUEUED" = 1 ]; then what="$what, queued resource $QR_NAME"; fi
log "watching $what: $CONFIG -> $WORKDIR"
polls=0
unknown=0
healthy_since=""
while :; do
  polls=$((polls + 1))
  state=$(tpu_state)
  case $state in
    READY)
      status=$(train_status)
      case $status in
        RUNNING)
          unknown=0
          now=$(date +%s)
          if [ -z "$healthy_since" ]; then healthy_since=$now; fi
          if [ "$RETRIES" -gt 0 ] && [ $((now - healthy_since)) -ge "$RETRY_RESET" ]; then
            log "healthy for ${RETRY_RESET}s: recovery count reset"
            RETRIES=0
          fi
          log "training runs" ;;
        DONE)
          log "training finished (exit status 0 on all workers)"
          if [ "$TEARDOWN_WHEN_DONE" = 1 ]; then do_teardown; fi
          exit 0 ;;
        NOT_INSTALLED)
          unknown=0; healthy_since=""
          log "slice READY without the code: installing"
          setup_and_train ;;
        FAILED:*)
          unknown=0; healthy_since=""
          recovery "training stopped (${status#FAILED:})"
          tpu_ssh_cmd 0 "tail -n 30 $(rpath "$REMOTE_LOG_DIR")/train.log"
          run "${GC[@]}" || true
          if ! do_train --restart; then warn "tpu_train.sh failed; next poll retries"; fi ;;
        *)
          unknown=$((unknown + 1)); healthy_since=""
          log "could not read the training status ($unknown/$MAX_UNKNOWN)" ;;
      esac ;;
    PENDING:*)
      unknown=0; healthy_since=""
      log "slice ${state#PENDING:}: waiting" ;;
    DEAD:* | NOT_FOUND)
      unknown=0; healthy_since=""
      recovery "slice ${state#DEAD:}"
      if [ "$state" != NOT_FOUND ] && ! do_teardown; then
        warn "tpu_teardown.sh failed; next poll retries"
      elif ! do_create; then
        warn "tpu_create.sh failed (no capacity?); next poll retries"
      elif [ "$QUEUED" = 0 ]; then
        setup_and_train
      else
        log "queued; installing once it is ACTIVE"
      fi ;;
    *)
      unknown=$((unknown + 1)); healthy_since=""
      log "could not read the slice state: ${state#UNKNOWN:} ($unknown/$MAX_UNKNOWN)" ;;
  esac
  if [ "$unknown" -ge "$MAX_UNKNOWN" ] && [ "$MAX_UNKNOWN" -gt 0 ]; then
    fail "no readable state for $MAX_UNKNOWN polls in a row (gcloud auth? network? ssh to the workers?)"
  fi
  if [ "$MAX_POLLS" -gt 0 ] && [ "$polls" -ge "$MAX_POLLS" ]; then
    log "stopping after $polls poll(s) (--max-polls)"
    exit 0
  fi
  pause "$POLL"
done
