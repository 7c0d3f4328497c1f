#!/usr/bin/env bash
# Installs what building and testing tern needs on a Debian machine, skipping what is already there:
# Open vSwitch (lab, OpenFlow/OVSDB tests), etcd (the etcd backend's tests), protoc (etcd-client's
# gRPC code), iproute2/ping/ethtool (network namespaces of the lab), udhcpc (the lab VMs' DHCP
# client). Run as root.
set -euo pipefail

need=()
have() { command -v "$1" >/dev/null 2>&1; }
have ovs-vswitchd || need+=(openvswitch-switch)
have etcd || [ -x /usr/bin/etcd ] || need+=(etcd-server)
have etcdctl || need+=(etcd-client)
have protoc || need+=(protobuf-compiler)
have ip || need+=(iproute2)
have ping || need+=(iputils-ping)
have ethtool || need+=(ethtool)
have curl || need+=(curl)
have udhcpc || need+=(udhcpc)
have cargo || need+=(cargo rustc)

if ((${#need[@]})); then
  if [ "$(id -u)" != 0 ]; then
    echo "install-deps: missing ${need[*]}; run as root (or install them) first" >&2
    exit 1
  fi
  echo "install-deps: installing ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
# Debian's packages ship service scripts but nothing is started here: tests start their own daemons.
echo "install-deps: ok ($(ovs-vswitchd --version | head -1), etcd $(etcd --version 2>/dev/null | awk '/etcd Version/{print $3}'), $(protoc --version))"
