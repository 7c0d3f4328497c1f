#!/usr/bin/env bash
# Creates (idempotently) the Python virtualenv of the tests that drive tern with real OpenStack
# software: target/python-venv with, from PyPI at pinned versions, openstacksdk (the compatibility
# test), and keystone served by gunicorn, python-openstackclient and tempest (scripts/keystone.py and
# the tests that start a real Keystone). They share one virtualenv: pip resolves them together without
# conflict. Python itself (python3, python3-venv, python3-pip) comes from scripts/install-deps.sh, the
# one list of Debian packages. Fast when already done: a stamp file records every pin.
#
# Usage: scripts/python-env.sh            (from anywhere; the venv goes under the workspace's target/)
#        TERN_PYTHON=python3.11 scripts/python-env.sh   to choose the interpreter.
set -euo pipefail

# The pins: distribution name and version (bump here; the stamp then makes the venv follow).
PINS=(
  openstacksdk==4.22.0
  keystone==30.0.0
  gunicorn==27.0.1
  python-openstackclient==10.5.0
  tempest==47.0.0
)
# What must import for the venv to count as made.
IMPORTS="openstack, keystone, gunicorn, openstackclient, tempest"

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$root/target/python-venv"
stamp="$venv/.tern-stamp"
want="${PINS[*]}"
python="${TERN_PYTHON:-python3}"

say() { echo "python-env: $*"; }
die() {
  echo "python-env: error: $*" >&2
  exit 1
}

if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && [ -x "$venv/bin/python" ] &&
  "$venv/bin/python" -c "import $IMPORTS" >/dev/null 2>&1; then
  say "ok (already in $venv: $want)"
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
say "installing from PyPI into $venv: $want"
started=$SECONDS
"${pip[@]}" install --quiet --upgrade pip || say "warning: could not upgrade pip; going on with $("${pip[@]}" --version)"
"${pip[@]}" install --quiet "${PINS[@]}" || die "pip install $want failed (is PyPI reachable?)"
"$venv/bin/python" -c "import $IMPORTS" || die "the installed packages do not import in $venv"
# Every pin must be what is installed (a pin another package overrides would show here).
"$venv/bin/python" - "${PINS[@]}" <<'EOF' || die "the virtualenv does not hold the pinned versions"
import sys
from importlib.metadata import version

wrong = []
for pin in sys.argv[1:]:
    name, wanted = pin.split("==")
    if version(name) != wanted:
        wrong.append("%s %s (wanted %s)" % (name, version(name), wanted))
if wrong:
    sys.exit("python-env: installed " + ", ".join(wrong))
EOF
echo "$want" >"$stamp"
say "ok ($want in $venv, $("$venv/bin/python" --version 2>&1); $((SECONDS - started)) s)"
