#!/usr/bin/env bash
# Installs every Debian package that building, testing, demonstrating and benchmarking tern needs,
# skipping those already installed. What is missing is decided by package (dpkg-query), never by
# whether some command happens to exist. Run as root on Debian 12 (the Rust toolchain, gcc and make
# are expected to be there already, as on every machine tern is built on).
#
# Usage: scripts/install-deps.sh           install what is missing
#        scripts/install-deps.sh --list    print the package list (one per line) and exit
#        scripts/install-deps.sh --check   exit 1 naming what is missing, install nothing
set -euo pipefail

# The one list. Each entry: package, then why tern needs it.
PACKAGES=(
  "openvswitch-switch  ovs-vswitchd, ovsdb-server, ovs-vsctl, ovs-appctl, ovsdb-tool and the vswitch schema: the lab, the OVSDB/OpenFlow tests, the bundle benchmark"
  "openvswitch-common  ovs-ofctl: flow dumps the tests compare against, the bundle benchmark's reference"
  "etcd-server         etcd: the etcd store backend's tests, benchmarks and 'tern lab --nb etcd'"
  "etcd-client         etcdctl: the etcd test harness checks the cluster with it"
  "protobuf-compiler   protoc: etcd-client's build script compiles etcd's gRPC protocol"
  "libprotobuf-dev     google/protobuf/*.proto, which etcd's protocol imports (protoc alone does not ship them)"
  "iproute2            ip netns/link/addr: the lab's hypervisors and VMs are network namespaces joined by veth"
  "iputils-ping        ping: the lab's and the demo's reachability checks"
  "ethtool             turns off transmit checksum offload on the lab VMs' veths (else their UDP crosses tunnels with unfinished checksums)"
  "udhcpc              the lab VMs' DHCP client (the DHCP tests and the demo)"
  "procps              kill: tests stop the processes they started by pid"
  "ca-certificates     TLS to the package registries (pip and cargo fetches)"
  "python3             the openstacksdk compatibility test's interpreter"
  "python3-venv        its virtualenv (target/python-venv, scripts/python-env.sh)"
  "python3-pip         installs openstacksdk into that virtualenv"
)

names=()
for entry in "${PACKAGES[@]}"; do names+=("${entry%% *}"); done

installed() {
  [ "$(dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null)" = installed ]
}

case "${1:-}" in
  --list)
    printf '%s\n' "${names[@]}"
    exit 0
    ;;
  --check | "") ;;
  *)
    echo "install-deps: unknown argument '$1' (expected --list or --check)" >&2
    exit 2
    ;;
esac

command -v dpkg-query >/dev/null 2>&1 || {
  echo "install-deps: dpkg-query not found: this script installs Debian packages and needs Debian" >&2
  exit 1
}

need=()
for p in "${names[@]}"; do installed "$p" || need+=("$p"); done

if ((${#need[@]})); then
  if [ "${1:-}" = --check ]; then
    echo "install-deps: missing ${need[*]}" >&2
    exit 1
  fi
  if [ "$(id -u)" != 0 ]; then
    echo "install-deps: missing ${need[*]}; run as root (or install them) first" >&2
    exit 1
  fi
  echo "install-deps: installing ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # Recommends stay out: every package tern needs is named above, so nothing rests on a recommend.
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
for c in cargo cc make; do
  command -v "$c" >/dev/null 2>&1 || {
    echo "install-deps: '$c' not found: tern needs the Rust toolchain (rustup), gcc and make" >&2
    exit 1
  }
done
# Debian's packages ship service scripts but nothing is started here: tests start their own daemons.
echo "install-deps: ok (${#names[@]} packages; $(ovs-vswitchd --version | head -1)," \
  "etcd $(etcd --version 2>/dev/null | awk '/etcd Version/{print $3}'), $(protoc --version))"
