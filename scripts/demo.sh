#!/usr/bin/env bash
# `make demo` for now: the NB store as an operator sees it. A tenant network, subnet and port go into
# the embedded durable store (redb), are read back by new processes, watched from a revision, and the
# same is done against a real etcd started for the demo (stopped by its pid at the end).
set -euo pipefail
TERN=${1:-target/release/tern}
work=$(mktemp -d /tmp/tern-demo.XXXXXX)
etcd_pid=
cleanup() { [ -n "$etcd_pid" ] && kill "$etcd_pid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
run() { printf '$ %s\n' "$*" >&2; "$@"; }
field() { sed -n "s/^  \"$1\": \"\{0,1\}\([^\",]*\).*/\1/p" | head -1; }

nb_demo() {
  local dsn=$1
  export TERN_NB=$dsn
  say "NB store: $dsn"
  net=$(run "$TERN" db put network '{"name":"tenant-net"}' | tee /dev/stderr | field id)
  sub=$(run "$TERN" db put subnet "{\"name\":\"tenant-v4\",\"network_id\":\"$net\",\"ip_version\":4,\"cidr\":\"10.10.0.0/24\",\"gateway_ip\":\"10.10.0.1\"}" | field id)
  rev=$(run "$TERN" db revision)
  echo "store revision after the subnet: $rev"
  run "$TERN" db put port "{\"name\":\"vm1-eth0\",\"network_id\":\"$net\",\"fixed_ips\":[{\"subnet_id\":\"$sub\"}],\"binding:host_id\":\"hv1\"}" >/dev/null
  run "$TERN" db put port "{\"name\":\"vm2-eth0\",\"network_id\":\"$net\",\"fixed_ips\":[{\"subnet_id\":\"$sub\"}],\"binding:host_id\":\"hv2\"}" >/dev/null
  say "a new process lists the ports (each got a MAC, an IP from the subnet and a unique key)"
  run "$TERN" db ls port
  run "$TERN" db ls port --json | grep -E '"(mac_address|ip_address|unique_key)"'
  say "events after revision $rev, in order"
  run "$TERN" db watch --from "$rev" --count 2 | cut -c1-150
  say "bad input is refused, naming what was wrong (exit status 2)"
  run "$TERN" db put port "{\"network_id\":\"$net\",\"mac_address\":\"01:00:5e:00:00:01\"}" || echo "(exit status $?)"
}

nb_demo "redb:$work/nb.redb"

etcd_bin=$(command -v etcd || echo /usr/bin/etcd)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
peer=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$etcd_bin" --name tern-demo --data-dir "$work/etcd" --listen-client-urls "http://127.0.0.1:$port" \
  --advertise-client-urls "http://127.0.0.1:$port" --listen-peer-urls "http://127.0.0.1:$peer" \
  --initial-advertise-peer-urls "http://127.0.0.1:$peer" --initial-cluster "tern-demo=http://127.0.0.1:$peer" \
  >"$work/etcd.log" 2>&1 &
etcd_pid=$!
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/health" >/dev/null && break; sleep 0.1; done
nb_demo "etcd://127.0.0.1:$port"
say "done: the lab (hypervisors, VMs, live migration) comes with the next issues"
