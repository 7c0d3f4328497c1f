#!/usr/bin/env bash
# Runs `make demo` and `make test` in a freshly bootstrapped Debian 12 root that holds only what a new
# machine of tern's kind has: the Debian base (minbase), gcc and make, git, Python 3 with venv, and the
# host's Rust toolchain (its rustup and cargo directories bind-mounted, not installed again). Whatever
# else the build, the tests or the demo need must come from the project's own scripts: a missing
# install step fails here even when the host already has the package.
#
# The root also gets the host's network settings, which a machine of this kind has and the project does
# not install: /etc/resolv.conf, the apt mirror (read from the host's sources), apt's Acquire settings
# and the host's local CA certificates.
#
# Usage (as root): scripts/fresh-check.sh [--keep] [--only demo|test]
#   --keep       leave the root (under target/fresh-check/) for inspection; mounts are removed anyway
#   --only X     run only `make X`
# Environment: TERN_FRESH_MIRROR (default: the host's first Debian mirror), TERN_FRESH_SUITE (bookworm).
# Output: progress on the terminal, everything in target/fresh-check/log, a summary at the end.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
keep=0
only=""
while [ $# -gt 0 ]; do
  case "$1" in
    --keep) keep=1 ;;
    --only)
      only="${2:-}"
      case "$only" in demo | test) ;; *) echo "fresh-check: --only takes demo or test" >&2 && exit 2 ;; esac
      shift
      ;;
    *) echo "fresh-check: unknown argument '$1' (expected --keep or --only demo|test)" >&2 && exit 2 ;;
  esac
  shift
done

say() { echo "fresh-check: $*"; }
die() {
  echo "fresh-check: error: $*" >&2
  exit 1
}
[ "$(id -u)" = 0 ] || die "run as root (debootstrap, chroot and mounts need it)"

suite="${TERN_FRESH_SUITE:-bookworm}"
mirror="${TERN_FRESH_MIRROR:-}"
if [ -z "$mirror" ]; then
  # The machine's configured Debian mirror: deb822 sources first, then one-line sources.
  mirror="$(cat /etc/apt/sources.list.d/*.sources 2>/dev/null |
    awk '/^URIs:/ { for (i = 2; i <= NF; i++) if ($i ~ /debian\/?$/) { print $i; exit } }')"
  [ -n "$mirror" ] || mirror="$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null |
    awk '$1 == "deb" { for (i = 2; i <= NF; i++) if ($i ~ /^https?:.*debian\/?$/) { print $i; exit } }')"
fi
[ -n "$mirror" ] || die "no Debian mirror found in /etc/apt; set TERN_FRESH_MIRROR"
security="${mirror%/debian}/debian-security"
security="${security%/}"

rustup_home="${RUSTUP_HOME:-$HOME/.rustup}"
cargo_home="${CARGO_HOME:-$HOME/.cargo}"
[ -d "$rustup_home/toolchains" ] || die "no rustup toolchain in $rustup_home"
[ -x "$cargo_home/bin/cargo" ] || die "no cargo in $cargo_home/bin"

# debootstrap is this check's own tool, not the project's: installed here, not by install-deps.sh.
if [ "$(dpkg-query -W -f='${db:Status-Status}' debootstrap 2>/dev/null)" != installed ]; then
  say "installing debootstrap"
  DEBIAN_FRONTEND=noninteractive apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap >/dev/null
fi

work="$here/target/fresh-check"
mkdir -p "$work"
log="$work/log"
: >"$log"
root="$(mktemp -d "$work/root.XXXXXX")"

# Lists the mount points at or under the root, deepest first.
mounts_under_root() {
  awk -v r="$root" '$2 == r || index($2, r "/") == 1 { print $2 }' /proc/self/mounts | sort -r
}

cleanup() {
  local rc=$?
  set +e
  # Processes still running inside the root (a daemon a failed test left behind) hold its mounts.
  for p in /proc/[0-9]*; do
    [ "$(readlink "$p/root" 2>/dev/null)" = "$root" ] && kill -9 "${p#/proc/}" 2>/dev/null
  done
  local m
  for m in $(mounts_under_root); do umount -l "$m" 2>/dev/null || umount -R -l "$m" 2>/dev/null; done
  if [ -n "$(mounts_under_root)" ]; then
    echo "fresh-check: error: still mounted, not deleting $root:" >&2
    mounts_under_root >&2
    exit 1
  fi
  if [ "$keep" = 1 ]; then
    say "root kept at $root (nothing mounted)"
  else
    # --one-file-system: never cross into anything mounted, should the check above ever miss one.
    rm -rf --one-file-system "$root"
  fi
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

step() {
  local name="$1"
  shift
  local t0=$SECONDS
  say "$name ..."
  echo "===== $name =====" >>"$log"
  if "$@" >>"$log" 2>&1; then
    say "$name: ok in $((SECONDS - t0)) s"
    durations+=("$name|$((SECONDS - t0))|ok")
  else
    say "$name: FAILED after $((SECONDS - t0)) s; the end of $log:"
    tail -40 "$log" | sed 's/^/    /'
    durations+=("$name|$((SECONDS - t0))|FAILED")
    summary
    exit 1
  fi
}

durations=()
summary() {
  echo
  echo "fresh-check: summary (Debian $suite from $mirror)"
  printf '  %-28s %8s  %s\n' step seconds result
  local d
  for d in "${durations[@]}"; do
    IFS='|' read -r n s r <<<"$d"
    printf '  %-28s %8s  %s\n' "$n" "$s" "$r"
  done
}

# What a new machine of this kind has besides the Debian base.
base_packages=gcc,libc6-dev,make,git,python3,python3-venv,ca-certificates

bootstrap() {
  debootstrap --variant=minbase --include="$base_packages" "$suite" "$root" "$mirror"
}

configure_root() {
  cp /etc/resolv.conf "$root/etc/resolv.conf"
  cat >"$root/etc/apt/sources.list" <<EOF
deb $mirror $suite main
deb $mirror $suite-updates main
deb $security $suite-security main
EOF
  # apt's network settings (proxies, validity checks of a snapshot mirror), as the host has them.
  local f
  for f in /etc/apt/apt.conf.d/*; do
    grep -q '^[[:space:]]*Acquire' "$f" 2>/dev/null && cp "$f" "$root/etc/apt/apt.conf.d/"
  done
  if compgen -G "/usr/local/share/ca-certificates/*.crt" >/dev/null; then
    cp /usr/local/share/ca-certificates/*.crt "$root/usr/local/share/ca-certificates/"
    chroot "$root" update-ca-certificates >/dev/null
  fi
  mkdir -p "$root/root/.rustup" "$root/root/.cargo" "$root/work"
  # The project as a fresh clone of what is committed (HEAD), as CI sees it.
  git clone --quiet --no-local "$here" "$root/work/tern"
  git -C "$root/work/tern" log -1 --format='fresh-check: testing %h %s'
}

mount_root() {
  # The root a mount point of its own: `ip netns exec` and `ip -n` remount / as a slave in their
  # mount namespace, which fails on a plain directory.
  mount --bind "$root" "$root"
  mount -t proc proc "$root/proc"
  mount -t sysfs sysfs "$root/sys"
  mount --rbind /dev "$root/dev"
  mount --make-rslave "$root/dev"
  # A fresh /run: `ip netns` keeps its namespaces under /run/netns.
  mount -t tmpfs -o mode=755 tmpfs "$root/run"
  mount --bind "$rustup_home" "$root/root/.rustup"
  mount --bind "$cargo_home" "$root/root/.cargo"
}

in_root() {
  chroot "$root" /usr/bin/env -i HOME=/root TERM=dumb LANG=C.UTF-8 CI=true \
    PATH=/root/.cargo/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    bash -c "cd /work/tern && $*"
}

t_all=$SECONDS
say "root $root, Debian $suite from $mirror, log $log"
step "debootstrap (minbase)" bootstrap
step "configure the root" configure_root
mount_root
if [ "$only" != test ]; then step "make demo" in_root make demo; fi
if [ "$only" != demo ]; then step "make test" in_root make test; fi
summary
say "passed in $((SECONDS - t_all)) s"
echo "----- the end of make's output -----"
tail -25 "$log"
