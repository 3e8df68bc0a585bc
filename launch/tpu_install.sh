#!/usr/bin/env bash
# Put the repository on every worker of the slice, make a venv, install jax[tpu] and ghn_jax.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

usage() {
  cat <<EOF
Usage: launch/tpu_install.sh [options]

On every worker (--worker=all): puts the code in ~/\$REMOTE_DIR, creates the venv
~/\$REMOTE_VENV (installing python3-venv with apt if needed), then
  pip install "jax[tpu]==\$JAX_VERSION"  and  pip install -e ~/\$REMOTE_DIR
Run it again after changing the code: it updates in place (copy mode unpacks over the
old tree, so files deleted here stay on the workers until REMOTE_DIR is removed).

  --source copy|git    INSTALL_SOURCE  copy: pack this checkout (tracked and untracked,
                                       not git-ignored files) and scp it [default];
                                       git: clone --repo-url at --ref on the workers
  --repo-url URL       REPO_URL        git only [this checkout's 'origin' remote]
  --ref REF            REPO_REF        git only: branch, tag or commit [this checkout's
                                       HEAD commit, which must be pushed]
  --jax-version V      JAX_VERSION     [$JAX_VERSION, the pin of setup.py]
  --pip-extra "PKGS"   PIP_EXTRA       more pip requirements, space-separated
  --worker W           WORKER          all, or one worker index [all]
  -h, --help           this help

$TPU_COMMON_HELP

Examples:
  launch/tpu_install.sh
  launch/tpu_install.sh --source git --repo-url https://github.com/me/ghn_jax.git --ref main
EOF
}

INSTALL_SOURCE=${INSTALL_SOURCE:-copy}
REPO_URL=${REPO_URL:-}
REPO_REF=${REPO_REF:-}
PIP_EXTRA=${PIP_EXTRA:-}
WORKER=${WORKER:-all}
while [ $# -gt 0 ]; do
  case $1 in
    -h | --help) usage; exit 0 ;;
    --source | --source=*) opt_value "$@"; INSTALL_SOURCE=$OPT_VAL; shift "$OPT_SHIFT" ;;
    --repo-url | --repo-url=*) opt_value "$@"; REPO_URL=$OPT_VAL; shift "$OPT_SHIFT" ;;
    --ref | --ref=*) opt_value "$@"; REPO_REF=$OPT_VAL; shift "$OPT_SHIFT" ;;
    --jax-version | --jax-version=*) opt_value "$@"; JAX_VERSION=$OPT_VAL; shift "$OPT_SHIFT" ;;
    --pip-extra | --pip-extra=*) opt_value "$@"; PIP_EXTRA=$OPT_VAL; shift "$OPT_SHIFT" ;;
    --worker | --worker=*) opt_value "$@"; WORKER=$OPT_VAL; shift "$OPT_SHIFT" ;;
    *) tpu_common_opt "$@"; shift "$OPT_SHIFT" ;;
  esac
done

tpu_defaults
[ "$WORKER" = all ] || is_uint "$WORKER" || die "--worker must be 'all' or a worker index, got '$WORKER'"
[ -n "$JAX_VERSION" ] || die "--jax-version is empty"
case $INSTALL_SOURCE in
  copy) ;;
  git)
    if [ -z "$REPO_URL" ]; then
      REPO_URL=$(git -C "$REPO_ROOT" remote get-url origin 2>/dev/null) ||
        die "--source git needs --repo-url (this checkout has no 'origin' remote)"
    fi
    if [ -z "$REPO_REF" ]; then
      REPO_REF=$(git -C "$REPO_ROOT" rev-parse HEAD 2>/dev/null) || die "--source git needs --ref"
      warn "installing commit $REPO_REF (this checkout's HEAD); it must be pushed to $REPO_URL"
    fi ;;
  *) die "--source must be 'copy' or 'git', got '$INSTALL_SOURCE'" ;;
esac
need_gcloud

DIR=$(rpath "$REMOTE_DIR")
VENV=$(rpath "$REMOTE_VENV")
TARBALL_NAME=ghn_jax-src.tar.gz   # in the workers' $HOME while unpacking

# Packs the checkout (tracked + untracked, minus git-ignored and deleted files) into $1.
make_tarball() {
  local out=$1 list="$TMP_DIR/files"
  print_cmd git -C "$REPO_ROOT" ls-files -z --cached --others --exclude-standard
  print_cmd tar -czf "$out" -C "$REPO_ROOT" --null -T "$list"
  if is_dry_run; then return 0; fi
  need_cmd git "--source copy packs the files git knows of"
  git -C "$REPO_ROOT" rev-parse --git-dir >/dev/null 2>&1 ||
    die "$REPO_ROOT is not a git checkout; use --source git --repo-url URL"
  git -C "$REPO_ROOT" ls-files -z --cached --others --exclude-standard |
    while IFS= read -r -d '' f; do
      if [ -e "$REPO_ROOT/$f" ] || [ -L "$REPO_ROOT/$f" ]; then printf '%s\0' "$f"; fi
    done >"$list"
  tar -czf "$out" -C "$REPO_ROOT" --null -T "$list"
  note "packed $(tr -cd '\0' <"$list" | wc -c | tr -d ' ') files, $(du -k "$out" | cut -f1) KiB"
  if [ "$(du -k "$out" | cut -f1)" -gt 102400 ]; then
    warn "the source tarball is over 100 MiB: large untracked files? (git-ignore them)"
  fi
}

if [ "$INSTALL_SOURCE" = copy ]; then
  ensure_tmp_dir
  tarball="$TMP_DIR/$TARBALL_NAME"
  make_tarball "$tarball"
  ssh_extra_words
  gc_cmd tpu-vm scp "$tarball" "$TPU_NAME:$TARBALL_NAME" "--worker=$WORKER" ${SSH_WORDS[@]+"${SSH_WORDS[@]}"}
  run "${GC[@]}"
  fetch="mkdir -p $DIR && tar -xzf \"\$HOME/$TARBALL_NAME\" -C $DIR && rm -f \"\$HOME/$TARBALL_NAME\""
else
  url=$(shquote "$REPO_URL")
  ref=$(shquote "$REPO_REF")
  fetch="if [ -d $DIR/.git ]; then git -C $DIR fetch -q origin $ref && git -C $DIR checkout -q --force FETCH_HEAD; else git clone -q $url $DIR && git -C $DIR checkout -q $ref; fi"
fi

extra=""
if [ -n "$PIP_EXTRA" ]; then
  read -r -a pip_words <<<"$PIP_EXTRA"
  extra=" $(quote_cmd "${pip_words[@]}")"
fi
apt_venv="sudo apt-get -q update && sudo DEBIAN_FRONTEND=noninteractive apt-get -q -y -o DPkg::Lock::Timeout=600 install python3-venv"
remote="set -e; cd \"\$HOME\"; $fetch"
remote="$remote; if [ ! -x $VENV/bin/pip ]; then python3 -m venv $VENV || { $apt_venv && python3 -m venv --clear $VENV; }; fi"
remote="$remote; $VENV/bin/python -m pip install -q -U pip"
remote="$remote; $VENV/bin/python -m pip install -q $(shquote "jax[tpu]==$JAX_VERSION")"
remote="$remote; $VENV/bin/python -m pip install -q -e $DIR$extra"
remote="$remote; $VENV/bin/python -c 'import jax, ghn_jax, socket; print(socket.gethostname(), \"jax\", jax.__version__, \"ghn_jax ok\")'"

note "installing on worker(s) '$WORKER' of $TPU_NAME (source: $INSTALL_SOURCE, jax[tpu]==$JAX_VERSION)"
tpu_ssh_cmd "$WORKER" "$remote"
run "${GC[@]}"
