#!/usr/bin/env bash
# Migration blackouts on an empty NB against a loaded, churning one (issue 13's acceptance): on one
# lab (3 hypervisors, VM a on hv1 and its probe peer c on hv3, both on network red), runs
# `tern lab migrate a --repeat N` with each trigger (rarp, unplug, api), with and without dual
# delivery, first on the lab's empty NB; then loads the background cloud
# (`tern lab load --ports P --chassis C --churn R`: P ports on C registered chassis without OVS,
# R port updates a second) and runs the same migrations again while the churn runs. Prints a
# table of the L2 probe's blackout medians per direction, empty vs loaded, and their ratio (the
# goal is at most 1.5), and the median time after the switchover at which the peer's chassis (hv3)
# had its flows deliver the VM's traffic to the destination only (from the controllers' flow log).
#
# Loading is one-way, so the empty runs all come first and the loaded ones after, on the same
# lab: not interleaved (the output says so).
#
# Usage: scripts/lab-scale.sh [--repeat N] [--nb embedded|etcd] [--ports P] [--chassis C]
#                             [--churn R] [--out DIR]
# Run as root after `cargo build --release -p tern` (TERN=path overrides target/release/tern).
# The lab uses its own directory and namespace prefix (tern-scale) and is taken down at the end,
# unless a migration run fails: then the script stops there and keeps the lab as it is for
# inspection (`tern lab --dir DIR status`, `tern flows dump`), and says how to take it down.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
TERN="${TERN:-target/release/tern}"
REPEAT=20
NB=embedded
PORTS=10000
CHASSIS=1000
CHURN=20
OUT=""
while [ $# -gt 0 ]; do
  case "$1" in
    --repeat) REPEAT="$2"; shift 2 ;;
    --nb) NB="$2"; shift 2 ;;
    --ports) PORTS="$2"; shift 2 ;;
    --chassis) CHASSIS="$2"; shift 2 ;;
    --churn) CHURN="$2"; shift 2 ;;
    --out) OUT="$2"; shift 2 ;;
    -h|--help) sed -n '2,19p' "$0"; exit 0 ;;
    *) echo "lab-scale: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
[ -x "$TERN" ] || { echo "lab-scale: no $TERN (cargo build --release -p tern)" >&2; exit 2; }
[ "$(id -u)" = 0 ] || { echo "lab-scale: run as root (the lab makes namespaces)" >&2; exit 2; }

PREFIX=tern-scale
DIR="${TMPDIR:-/tmp}/tern-lab-scale"
OUT="${OUT:-target/lab-scale/$(date +%Y%m%d-%H%M%S)}"
mkdir -p "$OUT"
lab() { "$TERN" lab --dir "$DIR" "$@"; }
say() { echo "lab-scale: $*" >&2; }

lab down >/dev/null 2>&1 || true
# Set when a run failed: the lab stays up for inspection.
KEEP=""
finish() {
  if [ -n "$KEEP" ]; then
    lab churn --stop >/dev/null 2>&1 || true
    say "a migration run failed: the lab is kept as it was for inspection; take it down with: $TERN lab --dir $DIR down"
  else
    lab down >/dev/null 2>&1 || true
  fi
}
trap finish EXIT

say "lab up ($NB NB, prefix $PREFIX, dir $DIR); results in $OUT"
lab up --hypervisors 3 --nb "$NB" --prefix "$PREFIX" 2>"$OUT/up.log"
lab vm add a --hv 1 --network red >/dev/null
lab vm add c --hv 3 --network red >/dev/null
for _ in $(seq 60); do
  lab ping a c --count 1 >/dev/null 2>&1 && lab ping c a --count 1 >/dev/null 2>&1 && break
done
lab ping a c --count 3 >/dev/null

# The data plane's state right after a failed run, for the post-mortem: per hypervisor the
# OpenFlow and datapath flows, conntrack, the tunnel neighbour cache and the interfaces; then the
# same after a few pings each way (what the pings' packets hit shows in the counters).
capture() {
  local out="$1" h ctl tag
  mkdir -p "$out"
  for tag in before after; do
    for h in 1 2 3; do
      ctl="$DIR/hv$h/ovs-vswitchd.$(cat "$DIR/hv$h/vsd.pid").ctl"
      ovs-ofctl -O OpenFlow13 dump-flows "unix:$DIR/hv$h/br-int.mgmt" >"$out/flows-hv$h-$tag.txt" 2>&1
      ovs-appctl -t "$ctl" dpctl/dump-flows -m >"$out/dp-flows-hv$h-$tag.txt" 2>&1
      ovs-appctl -t "$ctl" dpctl/dump-conntrack >"$out/conntrack-hv$h-$tag.txt" 2>&1
      ovs-appctl -t "$ctl" tnl/neigh/show >"$out/tnl-neigh-hv$h-$tag.txt" 2>&1
      ovs-vsctl "--db=unix:$DIR/hv$h/db.sock" --columns=name,ofport,external_ids list Interface \
        >"$out/interfaces-hv$h-$tag.txt" 2>&1
    done
    for vm in a c; do
      ip netns exec "$PREFIX-vm-$vm" ip neigh >"$out/neigh-vm-$vm-$tag.txt" 2>&1
    done
    [ "$tag" = before ] || break
    lab ping a c --count 3 >"$out/ping-a-c.txt" 2>&1 || true
    lab ping c a --count 3 >"$out/ping-c-a.txt" 2>&1 || true
  done
  say "the data plane's state is in $out"
}

# Where VM a is (hvN); each --repeat run goes back and forth between it and hv2 or hv1.
at=1
run_phase() {
  local phase="$1" dual trigger to flags
  # The machine's load around the phase: other work on it skews one phase against the other.
  echo "before $(cut -d' ' -f1-3 /proc/loadavg)" >"$OUT/$phase.loadavg"
  for dual in on off; do
    for trigger in rarp unplug api; do
      to=$((at == 1 ? 2 : 1))
      flags=()
      [ "$dual" = off ] && flags+=(--no-dual-delivery)
      say "$phase: trigger $trigger, dual delivery $dual: $REPEAT migrations hv$at <-> hv$to"
      if ! lab migrate a --to "hv$to" --trigger "$trigger" "${flags[@]}" --repeat "$REPEAT" --probes l2 \
        --json >"$OUT/$phase-$trigger-$dual.json" 2>"$OUT/$phase-$trigger-$dual.log"; then
        say "$phase $trigger $dual: tern lab migrate failed (see $OUT/$phase-$trigger-$dual.log); stopping here"
        touch "$OUT/$phase-$trigger-$dual.failed"
        capture "$OUT/failure"
        KEEP=1
        return
      fi
      # Where the VM ended: the last migration's destination.
      at=$(python3 -c 'import json,sys
try:
    m = json.load(open(sys.argv[1]))["migrations"]
    print(m[-1]["to"].removeprefix("hv"))
except Exception:
    print(sys.argv[2])' "$OUT/$phase-$trigger-$dual.json" "$at")
    done
  done
  echo "after $(cut -d' ' -f1-3 /proc/loadavg)" >>"$OUT/$phase.loadavg"
}

started=$(date +%s)
load_secs="-"
run_phase empty
if [ -z "$KEEP" ]; then
say "loading the background cloud: $PORTS ports on $CHASSIS chassis, churn $CHURN/s"
load_started=$(date +%s.%N)
lab load --ports "$PORTS" --chassis "$CHASSIS" --churn "$CHURN" >"$OUT/load.out" 2>"$OUT/load.log"
load_secs=$(python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.1f}')" "$load_started" "$(date +%s.%N)")
cat "$OUT/load.out" >&2
run_phase loaded
fi
lab churn --stop >"$OUT/churn-stop.out" 2>&1 || true
cp "$DIR/churn.log" "$OUT/churn.log" 2>/dev/null || true
lab status --json >"$OUT/status.json" 2>/dev/null || true
# The control plane's logs (controllers' warnings under load), before the lab goes.
mkdir -p "$OUT/lab-logs"
cp "$DIR"/*.log "$OUT/lab-logs/" 2>/dev/null || true
total=$(($(date +%s) - started))

python3 - "$OUT" "$REPEAT" "$NB" "$PORTS" "$CHASSIS" "$CHURN" "$load_secs" "$total" <<'EOF'
import json, os, statistics, sys

out, repeat, nb, ports, chassis, churn, load_secs, total = sys.argv[1:]

def read(phase, trigger, dual):
    base = os.path.join(out, f"{phase}-{trigger}-{dual}")
    try:
        r = json.load(open(base + ".json"))
    except Exception:
        return None
    r["failed"] = os.path.exists(base + ".failed")
    return r

def median(r, direction):
    return r["summary"][direction]["blackout_ms"]["median"] if r else None

def peer_moved(r):
    """Median ms after T0 at which hv3's flows delivered the VM's traffic to the destination only."""
    if not r:
        return None
    at = []
    for m in r["migrations"]:
        for e in m["timeline"].get("chassis", {}).get("hv3", []):
            if e["at_ms"] >= 0 and e["location"] == [m["to"]]:
                at.append(e["at_ms"])
                break
    return statistics.median(at) if at else None

def fmt(v):
    return "-" if v is None else f"{v:.2f}"

def ratio(empty, loaded):
    if empty is None or loaded is None:
        return "-", None
    if empty == 0:
        return ("1.00" if loaded == 0 else "inf"), (loaded == 0)
    q = loaded / empty
    return f"{q:.2f}", q <= 1.5

print(f"\nlab-scale: {repeat} migrations per row, nb {nb}; loaded = {ports} ports on {chassis} registered")
print(f"chassis without OVS, churn {churn} port updates/s (load took {load_secs} s; whole run {total} s).")
print("Empty runs all came first, loaded runs after, on the same lab (loading is one-way): not interleaved.")
print("Blackout: median of the L2 probe per direction, ms (nearest-rank; a direction that lost nothing counts 0).")
print("peer flows: median ms after T0 at which hv3's flows delivered the VM's traffic to the destination only.")
for phase in ["empty", "loaded"]:
    try:
        avg = open(os.path.join(out, f"{phase}.loadavg")).read().split("\n")
        print(f"machine load average (1/5/15 min) of the {phase} phase: {'; '.join(a for a in avg if a)}")
    except OSError:
        pass
print()
head = ["trigger", "dual", "to_vm empty", "loaded", "ratio", "from_vm empty", "loaded", "ratio",
        "peer flows empty", "loaded", "unrecovered e/l", "within 1.5x"]
rows = []
verdicts = []
for dual in ["on", "off"]:
    for trigger in ["rarp", "unplug", "api"]:
        e, l = read("empty", trigger, dual), read("loaded", trigger, dual)
        cells = [trigger, dual]
        ok = True
        for d in ["to_vm", "from_vm"]:
            me, ml = median(e, d), median(l, d)
            text, good = ratio(me, ml)
            cells += [fmt(me), fmt(ml), text]
            ok = ok and good is True
        cells += [fmt(peer_moved(e)), fmt(peer_moved(l))]
        unrec = lambda r: "-" if not r else str(r["summary"]["to_vm"]["unrecovered"] + r["summary"]["from_vm"]["unrecovered"])
        cells.append(f"{unrec(e)}/{unrec(l)}")
        failed = any(r is None or r["failed"] for r in (e, l))
        verdict = "FAILED RUN" if failed else ("yes" if ok else "NO")
        cells.append(verdict)
        verdicts.append(verdict)
        rows.append(cells)
widths = [max(len(str(x)) for x in col) for col in zip(head, *rows)]
line = lambda cells: "  ".join(str(c).rjust(w) if i > 1 else str(c).ljust(w) for i, (c, w) in enumerate(zip(cells, widths)))
print(line(head))
for r in rows:
    print(line(r))
print(f"\nrows within 1.5x: {verdicts.count('yes')}/{len(verdicts)}; JSON reports in {out}")
EOF
[ -z "$KEEP" ] || exit 1
