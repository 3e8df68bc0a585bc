#!/usr/bin/env bash
# Create a Cloud TPU VM pod slice (directly, or through a queued resource).
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

usage() {
  cat <<EOF
Usage: launch/tpu_create.sh [options] [-- extra gcloud flags]

Creates the TPU VM slice TPU_NAME (all its workers). Billing starts when it is READY
and runs until launch/tpu_teardown.sh deletes it.

  --spot              Spot VM: much cheaper, can be preempted at any time
                      (launch/tpu_resume.sh recreates it and resumes training)
  --preemptible       legacy preemptible VM (tpu-vm create only; max 24 h)
  --reserved          use reserved capacity
  --queued            request it as a queued resource (QR_NAME); it is provisioned when
                      capacity frees up. Use the same --queued with the other scripts.
  --valid-until DUR   queued only: give up if not provisioned within DUR (e.g. 6h)
  --wait              queued only: poll until the queued resource is ACTIVE
  --wait-timeout S    with --wait: give up after S seconds [86400]
  --poll S            with --wait: seconds between polls [60]
  -h, --help          this help

$TPU_COMMON_HELP

Examples:
  launch/tpu_create.sh --accelerator v4-32 --spot
  ACCELERATOR=v5litepod-32 launch/tpu_create.sh --queued --spot --wait
  DRY_RUN=1 launch/tpu_create.sh -- --network=my-net --service-account=sa@p.iam.gserviceaccount.com
EOF
}

SPOT=0
PREEMPTIBLE=0
RESERVED=0
WAIT=0
WAIT_TIMEOUT=86400
POLL=60
VALID_UNTIL=""
EXTRA=()
while [ $# -gt 0 ]; do
  case $1 in
    -h | --help) usage; exit 0 ;;
    --spot) SPOT=1; shift ;;
    --preemptible) PREEMPTIBLE=1; shift ;;
    --reserved) RESERVED=1; shift ;;
    --wait) WAIT=1; shift ;;
    --wait-timeout | --wait-timeout=*) opt_value "$@"; WAIT_TIMEOUT=$OPT_VAL; shift "$OPT_SHIFT" ;;
    --poll | --poll=*) opt_value "$@"; POLL=$OPT_VAL; shift "$OPT_SHIFT" ;;
    --valid-until | --valid-until=*) opt_value "$@"; VALID_UNTIL=$OPT_VAL; shift "$OPT_SHIFT" ;;
    --) shift; EXTRA=("$@"); break ;;
    *) tpu_common_opt "$@"; shift "$OPT_SHIFT" ;;
  esac
done

tpu_defaults
require_uint "$WAIT_TIMEOUT" "--wait-timeout"
require_uint "$POLL" "--poll"
if [ "$SPOT" = 1 ] && [ "$PREEMPTIBLE" = 1 ]; then
  die "--spot and --preemptible exclude each other (--spot is the current kind)"
fi
if [ "$QUEUED" = 1 ] && [ "$PREEMPTIBLE" = 1 ]; then
  die "queued resources take --spot, not --preemptible"
fi
if [ "$QUEUED" = 0 ] && { [ "$WAIT" = 1 ] || [ -n "$VALID_UNTIL" ]; }; then
  die "--wait and --valid-until are for queued resources (add --queued); tpu-vm create already waits"
fi
need_gcloud

if [ "$QUEUED" = 1 ]; then
  gc_cmd queued-resources create "$QR_NAME" "--node-id=$TPU_NAME" \
    "--accelerator-type=$ACCELERATOR" "--runtime-version=$RUNTIME_VERSION"
  if [ -n "$VALID_UNTIL" ]; then GC+=("--valid-until-duration=$VALID_UNTIL"); fi
else
  gc_cmd tpu-vm create "$TPU_NAME" "--accelerator-type=$ACCELERATOR" "--version=$RUNTIME_VERSION"
  if [ "$PREEMPTIBLE" = 1 ]; then GC+=(--preemptible); fi
fi
if [ "$SPOT" = 1 ]; then GC+=(--spot); fi
if [ "$RESERVED" = 1 ]; then GC+=(--reserved); fi
GC+=(${EXTRA[@]+"${EXTRA[@]}"})

desc="$RUNTIME_VERSION"
if [ "$SPOT" = 1 ]; then desc="$desc, spot"; fi
if [ "$PREEMPTIBLE" = 1 ]; then desc="$desc, preemptible"; fi
if [ "$QUEUED" = 1 ]; then desc="$desc, queued resource $QR_NAME"; fi
note "creating $ACCELERATOR '$TPU_NAME' in $ZONE ($desc)"
run "${GC[@]}"

if [ "$QUEUED" = 1 ] && [ "$WAIT" = 1 ]; then
  start=$(date +%s)
  while :; do
    state=$(tpu_state)
    case $state in
      READY) note "queued resource $QR_NAME is ACTIVE"; break ;;
      DEAD:* | NOT_FOUND) fail "queued resource $QR_NAME is ${state#DEAD:}; delete it with launch/tpu_teardown.sh --queued and retry" ;;
      *) note "queued resource $QR_NAME: ${state#*:}" ;;
    esac
    if is_dry_run; then break; fi
    if [ $(($(date +%s) - start)) -ge "$WAIT_TIMEOUT" ]; then
      fail "queued resource $QR_NAME not ACTIVE after ${WAIT_TIMEOUT}s (it stays queued; check it with: gcloud compute tpus queued-resources describe $QR_NAME --zone=$ZONE)"
    fi
    pause "$POLL"
  done
elif [ "$QUEUED" = 1 ]; then
  note "queued; the slice exists once this shows ACTIVE: gcloud compute tpus queued-resources describe $QR_NAME --zone=$ZONE"
fi
