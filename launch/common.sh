# shellcheck shell=bash
# shellcheck disable=SC2034  # variables set here are read by the scripts that source it
# Shared helpers for the launch/ scripts. Sourced, not run.
#
#  * strict mode (set -euo pipefail);
#  * `run CMD...` prints "+ CMD" (shell-quoted, copy-pasteable) on stderr and runs it;
#    with DRY_RUN=1 it only prints, so every script can be previewed without gcloud;
#  * `die MSG`: one line "<script>: error: MSG" on stderr, exit status 2;
#  * TPU defaults (tpu_defaults) and the Cloud TPU commands shared by the tpu_*.sh scripts.
#
# Written for bash >= 3.2 (the macOS /bin/bash): no associative arrays, no mapfile,
# possibly-empty arrays expanded as ${a[@]+"${a[@]}"}.

set -euo pipefail

if [ "${BASH_SOURCE[0]}" = "$0" ]; then  # run, not sourced: explain and stop
  echo "Usage: . launch/common.sh   (helpers sourced by the launch/ scripts; see docs/launch.md)"
  exit 0
fi

LAUNCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$LAUNCH_DIR/.." && pwd)
SCRIPT_NAME=$(basename "$0")

DRY_RUN=${DRY_RUN:-0}
GCLOUD=${GCLOUD:-gcloud}          # the gcloud binary; tests point it at a missing path

# Layout on every TPU worker, relative to the remote $HOME unless absolute.
REMOTE_DIR=${REMOTE_DIR:-ghn_jax}            # the repository
REMOTE_VENV=${REMOTE_VENV:-ghn_jax_venv}     # the virtual environment
REMOTE_LOG_DIR=${REMOTE_LOG_DIR:-ghn_jax_logs}  # train.log, train.pid, train.rc

# The pins of setup.py; `jax[tpu]==X` pulls the matching jaxlib and libtpu.
JAX_VERSION=${JAX_VERSION:-0.10.2}

# ---------------------------------------------------------------- messages

die() {
  printf '%s: error: %s\n' "$SCRIPT_NAME" "$*" >&2
  exit 2
}

# A failure at run time (not a usage error): one line, exit status 1.
fail() {
  printf '%s: error: %s\n' "$SCRIPT_NAME" "$*" >&2
  exit 1
}

warn() { printf '%s: warning: %s\n' "$SCRIPT_NAME" "$*" >&2; }

note() { printf '[%s] %s\n' "$SCRIPT_NAME" "$*" >&2; }

# ---------------------------------------------------------------- quoting and running

# One word, quoted for a POSIX shell only when it needs it.
shquote() {
  case $1 in
    '') printf "''" ;;
    *[!A-Za-z0-9_./:=@%+,-]*)
      case $1 in
        *"'"*) printf "'%s'" "$(printf '%s' "$1" | sed "s/'/'\\\\''/g")" ;;
        *) printf "'%s'" "$1" ;;
      esac ;;
    *) printf '%s' "$1" ;;
  esac
}

# All arguments as one shell command line.
quote_cmd() {
  local out="" w
  for w in "$@"; do
    out="$out${out:+ }$(shquote "$w")"
  done
  printf '%s' "$out"
}

print_cmd() { printf '+ %s\n' "$(quote_cmd "$@")" >&2; }

is_dry_run() { [ "$DRY_RUN" = 1 ]; }

# Print the command, then run it (unless DRY_RUN=1).
run() {
  print_cmd "$@"
  if is_dry_run; then return 0; fi
  "$@"
}

# Print the command, then replace the shell by it (unless DRY_RUN=1), so that signals
# (SLURM's SIGTERM, Ctrl-C) reach the trainer itself.
run_exec() {
  print_cmd "$@"
  if is_dry_run; then exit 0; fi
  exec "$@"
}

# A command whose stdout is read by the script: printed, then run; with DRY_RUN=1 it is
# not run and FAKE is its output.   out=$(query FAKE cmd...)
query() {
  local fake=$1
  shift
  print_cmd "$@"
  if is_dry_run; then
    printf '%s\n' "$fake"
    return 0
  fi
  "$@"
}

# Sleep that a dry run only prints.
pause() { run sleep "$1"; }

need_cmd() {
  if is_dry_run; then return 0; fi
  command -v "$1" >/dev/null 2>&1 ||
    die "'$1' not found on PATH${2:+: $2} (DRY_RUN=1 previews the commands without it)"
}

need_gcloud() { need_cmd "$GCLOUD" "install the Google Cloud CLI and run 'gcloud auth login'"; }

# ---------------------------------------------------------------- option parsing

# For "--opt VALUE" and "--opt=VALUE": sets OPT_VAL and OPT_SHIFT (1 or 2).
opt_value() {
  case $1 in
    --*=*) OPT_VAL=${1#*=}; OPT_SHIFT=1 ;;
    *)
      [ $# -ge 2 ] || die "$1 needs a value"
      OPT_VAL=$2; OPT_SHIFT=2 ;;
  esac
}

# ---------------------------------------------------------------- validation

require() {  # require VALUE NAME [HINT]
  [ -n "$1" ] || die "$2 is required${3:+ ($3)}"
}

is_uint() { case $1 in '' | *[!0-9]*) return 1 ;; *) return 0 ;; esac; }

require_uint() {  # require_uint VALUE NAME
  is_uint "$1" || die "$2 must be a non-negative integer, got '$1'"
}

require_gs() {  # require_gs PATH NAME WHY
  case $1 in
    gs://?*) ;;
    *) die "$2 must be a gs:// path ($3), got '$1'" ;;
  esac
}

# host:port with a numeric port in 1..65535.
require_hostport() {  # require_hostport VALUE NAME
  local host=${1%:*} port=${1##*:}
  if [ "$host" = "$1" ] || [ -z "$host" ] || ! is_uint "$port" || [ "$port" -lt 1 ] || [ "$port" -gt 65535 ]; then
    die "$2 must be host:port (e.g. 10.0.0.2:1234), got '$1'"
  fi
}

# KEY=VALUE with a shell-variable KEY.
require_env_assignment() {
  case $1 in
    [A-Za-z_]*=*)
      case ${1%%=*} in
        *[!A-Za-z0-9_]*) die "--env takes KEY=VALUE, got '$1'" ;;
      esac ;;
    *) die "--env takes KEY=VALUE, got '$1'" ;;
  esac
}

# Warn when a --config file is missing here (the workers may still have it).
check_config() {
  case $1 in
    /*) [ -f "$1" ] || warn "config '$1' does not exist on this machine" ;;
    *) [ -f "$REPO_ROOT/$1" ] || warn "config '$1' does not exist in $REPO_ROOT" ;;
  esac
}

# ---------------------------------------------------------------- temporary files

# A scratch directory removed on exit: call ensure_tmp_dir in the main shell (not inside
# $(...)), then use $TMP_DIR.
TMP_DIR=""
ensure_tmp_dir() {
  if [ -z "$TMP_DIR" ]; then
    TMP_DIR=$(mktemp -d "${TMPDIR:-/tmp}/ghn_jax_launch.XXXXXX")
    trap 'rm -rf "$TMP_DIR"' EXIT
  fi
}

# ---------------------------------------------------------------- Cloud TPU

TPU_COMMON_HELP="Slice selection (flags override the environment variables):
  --name NAME          TPU_NAME        TPU VM (node) name [ghn-jax-\$USER]
  --zone ZONE          ZONE            zone [from the accelerator: v4 us-central2-b,
                                       v5litepod us-west4-a, v5p us-east5-a, v6e us-east5-b]
  --accelerator TYPE   ACCELERATOR     e.g. v4-32, v5litepod-32, v5p-32, v6e-16 [v4-32]
  --version VERSION    RUNTIME_VERSION TPU software version [v4 and older tpu-ubuntu2204-base,
                                       v5litepod v2-alpha-tpuv5-lite, v5p v2-alpha-tpuv5,
                                       v6e v2-alpha-tpuv6e]
  --project PROJECT    PROJECT         GCP project [gcloud's default]
  --queued             QUEUED=1        the slice is a queued resource
  --qr-name NAME       QR_NAME         queued-resource name [\$TPU_NAME-qr]
  --dry-run            DRY_RUN=1       print the commands, run nothing (gcloud not needed)
Also: GCLOUD (gcloud binary), SSH_EXTRA (extra flags for tpu-vm ssh/scp, e.g.
'--internal-ip'), REMOTE_DIR [ghn_jax], REMOTE_VENV [ghn_jax_venv] and
REMOTE_LOG_DIR [ghn_jax_logs] (on the workers, relative to their \$HOME)."

TPU_NAME=${TPU_NAME:-}
ZONE=${ZONE:-}
ACCELERATOR=${ACCELERATOR:-}
RUNTIME_VERSION=${RUNTIME_VERSION:-}
PROJECT=${PROJECT:-}
QUEUED=${QUEUED:-0}
QR_NAME=${QR_NAME:-}
SSH_EXTRA=${SSH_EXTRA:-}

# Parses one slice-selection option; sets OPT_SHIFT. Unknown options are an error.
tpu_common_opt() {
  case $1 in
    --name | --name=*) opt_value "$@"; TPU_NAME=$OPT_VAL ;;
    --zone | --zone=*) opt_value "$@"; ZONE=$OPT_VAL ;;
    --accelerator | --accelerator=*) opt_value "$@"; ACCELERATOR=$OPT_VAL ;;
    --version | --version=*) opt_value "$@"; RUNTIME_VERSION=$OPT_VAL ;;
    --project | --project=*) opt_value "$@"; PROJECT=$OPT_VAL ;;
    --qr-name | --qr-name=*) opt_value "$@"; QR_NAME=$OPT_VAL ;;
    --queued) QUEUED=1; OPT_SHIFT=1 ;;
    --dry-run) DRY_RUN=1; OPT_SHIFT=1 ;;
    -*) die "unknown option '$1' (see --help)" ;;
    *) die "unexpected argument '$1' (see --help)" ;;
  esac
}

# Fills in and checks the slice defaults; call once the options are parsed.
tpu_defaults() {
  local family rv="" zone=""
  ACCELERATOR=${ACCELERATOR:-v4-32}
  case $ACCELERATOR in
    v[0-9]*-[0-9]*) ;;
    *) die "ACCELERATOR must look like v4-32 or v5litepod-32, got '$ACCELERATOR'" ;;
  esac
  family=${ACCELERATOR%-*}
  case $family in
    v2 | v3 | v4) rv=tpu-ubuntu2204-base ;;
    v5litepod) rv=v2-alpha-tpuv5-lite ;;
    v5p) rv=v2-alpha-tpuv5 ;;
    v6e) rv=v2-alpha-tpuv6e ;;
  esac
  case $family in
    v4) zone=us-central2-b ;;
    v5litepod) zone=us-west4-a ;;
    v5p) zone=us-east5-a ;;
    v6e) zone=us-east5-b ;;
  esac
  RUNTIME_VERSION=${RUNTIME_VERSION:-$rv}
  [ -n "$RUNTIME_VERSION" ] || die "no default TPU software version for '$ACCELERATOR'; set RUNTIME_VERSION or --version"
  ZONE=${ZONE:-$zone}
  [ -n "$ZONE" ] || die "no default zone for '$ACCELERATOR'; set ZONE or --zone"

  if [ -z "$TPU_NAME" ]; then
    local user
    user=$(printf '%s' "${USER:-user}" | tr '[:upper:]' '[:lower:]' | tr -c 'a-z0-9-' '-')
    TPU_NAME="ghn-jax-$user"
  fi
  check_resource_name "$TPU_NAME" "TPU_NAME"
  QR_NAME=${QR_NAME:-$TPU_NAME-qr}
  check_resource_name "$QR_NAME" "QR_NAME"
  case $QUEUED in 0 | 1) ;; *) die "QUEUED must be 0 or 1, got '$QUEUED'" ;; esac
  local d
  for d in "$REMOTE_DIR" "$REMOTE_VENV" "$REMOTE_LOG_DIR"; do
    case $d in
      '' | . | .. | / | *[!A-Za-z0-9_./-]*)
        die "REMOTE_DIR, REMOTE_VENV and REMOTE_LOG_DIR must be plain paths ([A-Za-z0-9_./-]), got '$d'" ;;
    esac
  done
}

check_resource_name() {  # lower-case letters, digits, hyphens; starts with a letter
  case $1 in
    [a-z]*) ;;
    *) die "$2 must start with a lower-case letter, got '$1'" ;;
  esac
  case $1 in
    *[!a-z0-9-]* | *-) die "$2 may only hold a-z, 0-9 and '-' and may not end with '-', got '$1'" ;;
  esac
  [ "${#1}" -le 63 ] || die "$2 is longer than 63 characters: '$1'"
}

# shellcheck disable=SC2016  # the remote snippets below expand on the worker, not here
# A worker-side path as a shell word: "$HOME/<p>" (expanded on the worker) or an absolute path.
rpath() {
  case $1 in
    /*) printf '%s' "$1" ;;
    *) printf '"$HOME/%s"' "$1" ;;
  esac
}

# shellcheck disable=SC2016
# The same path for use inside a double-quoted remote string: $HOME/<p> or absolute.
rpath_text() {
  case $1 in
    /*) printf '%s' "$1" ;;
    *) printf '$HOME/%s' "$1" ;;
  esac
}

# gcloud compute tpus <group> <verb> <name> ... with --zone/--project appended.
GC=()
gc_cmd() {  # gc_cmd group verb name [args...]  -> sets the array GC
  GC=("$GCLOUD" compute tpus "$@" "--zone=$ZONE")
  if [ -n "$PROJECT" ]; then GC+=("--project=$PROJECT"); fi
}

ssh_extra_words() {
  SSH_WORDS=()
  if [ -n "$SSH_EXTRA" ]; then read -r -a SSH_WORDS <<<"$SSH_EXTRA"; fi
}

# Sets GC to: gcloud compute tpus tpu-vm ssh NAME --worker=WORKER --command=REMOTE ...
tpu_ssh_cmd() {  # tpu_ssh_cmd WORKER REMOTE_COMMAND
  ssh_extra_words
  gc_cmd tpu-vm ssh "$TPU_NAME" "--worker=$1" "--command=$2" ${SSH_WORDS[@]+"${SSH_WORDS[@]}"}
}

# Remote snippet: true when the training job recorded in train.pid is alive.
# shellcheck disable=SC2016
remote_is_running() {
  local log
  log=$(rpath "$REMOTE_LOG_DIR")
  printf '{ [ -f %s/train.pid ] && grep -qa ghn_jax.train "/proc/$(cat %s/train.pid)/cmdline" 2>/dev/null; }' "$log" "$log"
}

# Remote snippet: stops the recorded training job (its whole process group), if any.
# shellcheck disable=SC2016
remote_stop() {
  local log
  log=$(rpath "$REMOTE_LOG_DIR")
  printf 'if %s; then p=$(cat %s/train.pid); echo "stopping pid $p on $(hostname)"; kill -TERM -- "-$p" 2>/dev/null || kill -TERM "$p"; for i in $(seq 60); do %s || break; sleep 1; done; kill -KILL -- "-$p" 2>/dev/null || true; fi' \
    "$(remote_is_running)" "$log" "$(remote_is_running)"
}

# Remote snippet printing one word about training on a worker:
#   NOT_INSTALLED | RUNNING | EXITED <rc> | STOPPED
# shellcheck disable=SC2016
remote_status() {
  local log
  log=$(rpath "$REMOTE_LOG_DIR")
  printf 'if [ ! -x %s/bin/python ]; then echo NOT_INSTALLED; elif %s; then echo RUNNING; elif [ -f %s/train.rc ]; then echo "EXITED $(cat %s/train.rc)"; else echo STOPPED; fi' \
    "$(rpath "$REMOTE_VENV")" "$(remote_is_running)" "$log" "$log"
}

# Prints the slice state, normalised: READY | PENDING:<raw> | DEAD:<raw> | NOT_FOUND | UNKNOWN:<raw>.
# With DRY_RUN=1 the raw state is DRY_RUN_TPU_STATE [READY, or ACTIVE for a queued resource].
tpu_state() {
  local raw rc=0 err
  if [ "$QUEUED" = 1 ]; then
    gc_cmd queued-resources describe "$QR_NAME" "--format=value(state.state)"
  else
    gc_cmd tpu-vm describe "$TPU_NAME" "--format=value(state)"
  fi
  print_cmd "${GC[@]}"
  if is_dry_run; then
    if [ "$QUEUED" = 1 ]; then raw=${DRY_RUN_TPU_STATE:-ACTIVE}; else raw=${DRY_RUN_TPU_STATE:-READY}; fi
  else
    err=$(mktemp "${TMPDIR:-/tmp}/ghn_jax_describe.XXXXXX")
    raw=$("${GC[@]}" 2>"$err") || rc=$?
    if [ "$rc" -ne 0 ]; then
      if grep -qiE 'NOT_FOUND|not found' "$err"; then
        echo NOT_FOUND
      else
        echo "UNKNOWN:$(tail -n 1 "$err")"
      fi
      rm -f "$err"
      return 0
    fi
    rm -f "$err"
  fi
  raw=$(printf '%s' "$raw" | tr -d '[:space:]')
  if [ "$QUEUED" = 1 ]; then
    case $raw in
      ACTIVE) echo READY ;;
      CREATING | ACCEPTED | PROVISIONING | WAITING_FOR_RESOURCES | SUSPENDING | DELETING) echo "PENDING:$raw" ;;
      SUSPENDED | FAILED) echo "DEAD:$raw" ;;
      NOT_FOUND) echo NOT_FOUND ;;
      *) echo "UNKNOWN:$raw" ;;
    esac
  else
    case $raw in
      READY) echo READY ;;
      CREATING | STARTING | RESTARTING | REPAIRING | STOPPING | DELETING | UNHIDING) echo "PENDING:$raw" ;;
      PREEMPTED | TERMINATED | STOPPED | DELETED | HIDING | HIDDEN) echo "DEAD:$raw" ;;
      NOT_FOUND) echo NOT_FOUND ;;
      *) echo "UNKNOWN:$raw" ;;
    esac
  fi
}
