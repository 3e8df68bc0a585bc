#!/usr/bin/env bash
# Delete the TPU VM slice (or its queued resource, with the node in it).
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

usage() {
  cat <<EOF
Usage: launch/tpu_teardown.sh [options]

Deletes TPU_NAME (tpu-vm delete), or with --queued the queued resource QR_NAME and its
node (queued-resources delete --force). A slice bills for every hour it is READY, busy or
idle; delete it when training is over. The gs:// workdir (checkpoints, metrics) is kept.
Logs on the workers' disks are lost: copy what you need first (launch/tpu_logs.sh).

  --yes, -y        do not ask for confirmation (gcloud --quiet)
  --if-exists      succeed quietly when there is nothing to delete
  -h, --help       this help

$TPU_COMMON_HELP
EOF
}

YES=0
IF_EXISTS=0
while [ $# -gt 0 ]; do
  case $1 in
    -h | --help) usage; exit 0 ;;
    -y | --yes) YES=1; shift ;;
    --if-exists) IF_EXISTS=1; shift ;;
    *) tpu_common_opt "$@"; shift "$OPT_SHIFT" ;;
  esac
done

tpu_defaults
need_gcloud

if [ "$QUEUED" = 1 ]; then
  gc_cmd queued-resources delete "$QR_NAME" --force
  what="queued resource $QR_NAME (node $TPU_NAME)"
else
  gc_cmd tpu-vm delete "$TPU_NAME"
  what="TPU $TPU_NAME"
fi
delete=("${GC[@]}")
if [ "$YES" = 1 ]; then delete+=(--quiet); fi

if [ "$IF_EXISTS" = 1 ] && [ "$(tpu_state)" = NOT_FOUND ]; then
  note "nothing to delete: $what not found in $ZONE"
  exit 0
fi
note "deleting $what in $ZONE"
run "${delete[@]}"
