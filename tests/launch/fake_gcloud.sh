#!/usr/bin/env bash
# Test stand-in for `gcloud compute tpus ...`, with a fake slice on this machine:
#   $FAKE_TPU_ROOT/worker<i>/   the $HOME of worker i (FAKE_WORKERS workers, default 2)
#   $FAKE_TPU_ROOT/state        the slice state that describe prints (default READY)
#   $FAKE_TPU_ROOT/calls.log    one line per call: the arguments, shell-quoted
# tpu-vm ssh runs --command with bash once per selected worker, with HOME set to that
# worker's directory and `hostname` printing fake-w<i> (skipped when FAKE_SSH_EXEC=0);
# tpu-vm scp copies into the workers' directories; create/delete set the state.
set -euo pipefail
root=${FAKE_TPU_ROOT:?FAKE_TPU_ROOT is not set}
mkdir -p "$root"
printf '%q ' "$@" >>"$root/calls.log"
echo >>"$root/calls.log"

if [ "${1:-} ${2:-}" != "compute tpus" ] || [ $# -lt 4 ]; then
  echo "fake gcloud: unsupported command: $*" >&2
  exit 90
fi
group=$3
verb=$4
shift 4
worker=0
command=""
positional=()
for a in "$@"; do
  case $a in
    --worker=*) worker=${a#*=} ;;
    --command=*) command=${a#*=} ;;
    --*) ;;
    *) positional+=("$a") ;;
  esac
done

workers() {
  if [ "$worker" = all ]; then seq 0 $((${FAKE_WORKERS:-2} - 1)); else echo "$worker"; fi
}

state() { cat "$root/state" 2>/dev/null || echo READY; }

case "$group $verb" in
  "tpu-vm ssh")
    rc=0
    for w in $(workers); do
      mkdir -p "$root/worker$w"
      FAKE_HOST="fake-w$w" HOME="$root/worker$w" bash -c '
        hostname() { echo "$FAKE_HOST"; }
        export -f hostname
        if [ "${FAKE_SSH_EXEC:-1}" = 1 ]; then bash -c "$1"; fi' fake-ssh "$command" || rc=$?
    done
    exit "$rc" ;;
  "tpu-vm scp")
    src=${positional[0]}
    dest=${positional[1]#*:}
    for w in $(workers); do
      mkdir -p "$root/worker$w"
      cp "$src" "$root/worker$w/$dest"
    done ;;
  "tpu-vm describe" | "queued-resources describe")
    if [ "$(state)" = NOT_FOUND ]; then
      echo "ERROR: (gcloud.compute.tpus.$group.describe) NOT_FOUND: Resource not found" >&2
      exit 1
    fi
    state ;;
  "tpu-vm create" | "queued-resources create")
    rm -rf "$root"/worker*
    if [ "$group" = tpu-vm ]; then echo READY >"$root/state"; else echo ACTIVE >"$root/state"; fi ;;
  "tpu-vm delete" | "queued-resources delete")
    echo NOT_FOUND >"$root/state" ;;
  *)
    echo "fake gcloud: unsupported: $group $verb" >&2
    exit 90 ;;
esac
