#!/usr/bin/env bash
# Creates (idempotently) the Python virtualenv the openstacksdk compatibility test runs in:
# target/python-venv with the real openstacksdk from PyPI, at a pinned version.
# Works as root on a fresh Debian 12: installs python3-venv / python3-pip with apt when `python3 -m venv`
# cannot make a virtualenv. Fast when already done: a stamp file records the pinned version.
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

command -v "$python" >/dev/null 2>&1 || {
  if [ "$python" = python3 ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    say "python3 missing: installing python3 python3-venv python3-pip with apt-get"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq || die "apt-get update failed"
    apt-get install -y -qq --no-install-recommends python3 python3-venv python3-pip >/dev/null ||
      die "apt-get install python3 python3-venv python3-pip failed"
  else
    die "$python not found: install Python 3 (Debian: apt-get install python3 python3-venv python3-pip)"
  fi
}

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
    rm -rf "$venv"
    # Debian splits venv/ensurepip out of python3: install it and try again.
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
      say "'$python -m venv' is unavailable: installing python3-venv python3-pip with apt-get"
      export DEBIAN_FRONTEND=noninteractive
      apt-get update -qq || die "apt-get update failed"
      apt-get install -y -qq --no-install-recommends python3-venv python3-pip >/dev/null ||
        die "apt-get install python3-venv python3-pip failed"
      "$python" -m venv "$venv" || {
        rm -rf "$venv"
        die "'$python -m venv $venv' failed even after installing python3-venv"
      }
      rm -f "$log"
    else
      cat "$log" >&2
      rm -f "$log"
      die "'$python -m venv' failed; install python3-venv and python3-pip (as root: apt-get install python3-venv python3-pip)"
    fi
  else
    rm -f "$log"
  fi
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
