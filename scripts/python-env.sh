#!/usr/bin/env bash
# Creates (idempotently) the Python virtualenv the openstacksdk compatibility test runs in:
# target/python-venv with the real openstacksdk from PyPI, at a pinned version.
# Python itself (python3, python3-venv, python3-pip) comes from scripts/install-deps.sh, the one list of
# Debian packages. Fast when already done: a stamp file records the pinned version.
#
# Usage: scripts/python-env.sh            (from anywhere; the venv goes under the workspace's target/)
#        TERN_PYTHON=python3.11 scripts/python-env.sh   to choose the interpreter.
set -euo pipefail

OPENSTACKSDK_VERSION=4.22.0

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$root/target/python-venv"
stamp="$venv/.tern-stamp"
want="openstacksdk==$OPENSTACKSDK_VERSION"
python="${TERN_PYTHON:-python3}"

say() { echo "python-env: $*"; }
die() {
  echo "python-env: error: $*" >&2
  exit 1
}

if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && [ -x "$venv/bin/python" ] &&
  "$venv/bin/python" -c "import openstack" >/dev/null 2>&1; then
  say "ok ($want already in $venv)"
  exit 0
fi

command -v "$python" >/dev/null 2>&1 ||
  die "$python not found: run scripts/install-deps.sh as root (it installs python3, python3-venv, python3-pip)"

# A venv that is broken or half made (interrupted run, other Python) is made again from scratch.
rm -f "$stamp"
if [ -d "$venv" ] && ! "$venv/bin/python" -m pip --version >/dev/null 2>&1; then
  say "removing the incomplete virtualenv $venv"
  rm -rf "$venv"
fi

if [ ! -d "$venv" ]; then
  say "creating the virtualenv $venv with $("$python" --version 2>&1)"
  mkdir -p "$root/target"
  log="$(mktemp)"
  if ! "$python" -m venv "$venv" >"$log" 2>&1; then
    cat "$log" >&2
    rm -f "$log"
    rm -rf "$venv"
    die "'$python -m venv' failed: run scripts/install-deps.sh as root (it installs python3-venv and python3-pip)"
  fi
  rm -f "$log"
fi

pip=("$venv/bin/python" -m pip --disable-pip-version-check --no-input)
say "installing $want from PyPI into $venv"
"${pip[@]}" install --quiet --upgrade pip || say "warning: could not upgrade pip; going on with $("${pip[@]}" --version)"
"${pip[@]}" install --quiet "$want" || die "pip install $want failed (is PyPI reachable?)"
installed="$("$venv/bin/python" -c 'import openstack.version as v; print(v.__version__)' 2>/dev/null)" ||
  die "openstacksdk does not import in $venv"
[ "$installed" = "$OPENSTACKSDK_VERSION" ] || die "installed openstacksdk $installed, wanted $OPENSTACKSDK_VERSION"
echo "$want" >"$stamp"
say "ok (openstacksdk $installed in $venv, $("$venv/bin/python" --version 2>&1))"
