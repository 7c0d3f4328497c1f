#!/usr/bin/env bash
# `make test`'s runner: builds, then runs every test of the workspace in stages (pure, etcd, OVS, lab,
# Python clients, lint), timing each, and ends with a table of the stages and one total line. Every
# stage runs even when an earlier one failed (as `cargo test --no-fail-fast`); the exit status is 1 if
# anything failed. Run as root after scripts/install-deps.sh and scripts/python-env.sh (the Makefile
# does both).
#
# Each integration test file (crates/<crate>/tests/<name>.rs) belongs to exactly one stage, named in
# STAGE_OF below; a test file in no stage fails the run, so a new test cannot go unrun or run twice.
# Unit tests (src/), binaries' tests and doc tests are the "pure" stage.
#
# Usage: scripts/test.sh [STAGE...]   (default: all; STAGE is one of build pure etcd ovs lab python lint)
set -uo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
CARGO="${CARGO:-cargo}"

# crate/test-file -> stage, for every integration test file that needs more than the process itself.
# Files not listed here are pure (they run on the memory or redb store, or on nothing at all).
declare -A STAGE_OF=(
  [tern-store/conformance]=etcd
  [tern-store/nb]=etcd
  [tern-store/nb_index]=etcd
  [tern-store/etcd_smoke]=etcd
  [tern-store/etcd_cluster]=etcd
  [tern-store/etcd_tls]=etcd
  [tern-store/etcd_auth]=etcd
  [tern/db_cli]=etcd
  [tern/api_etcd_member_loss]=etcd
  [tern-openflow/ovs_sandbox]=ovs
  [tern-openflow/ofp_print_oracle]=ovs
  [tern-ovsdb/ovs]=ovs
  [tern-pipeline/ovs]=ovs
  [tern-controller/bundle_ovs]=ovs
  [tern-controller/controller_ovs]=ovs
  [tern/openflow_ovs]=ovs
  [tern/allinone]=ovs
  [tern-lab/lab]=lab
  [tern/lab_l2]=lab
  [tern/lab_migrate]=lab
  [tern/lab_load]=lab
  [tern/lab_nova]=lab
  [tern/openstacksdk]=python
  [tern/keystone_harness]=python
  [tern/keystone_auth]=python
  [tern/tempest]=python
)
# The pure integration test files, listed too so that a file's stage is always a decision.
PURE=(
  tern-openflow/round_trip tern-openflow/display_examples
  tern-pipeline/snapshots tern-pipeline/behaviour
  tern-controller/simulation tern-controller/core_simulation
  tern-api/basics tern-api/bindings_agents tern-api/concurrency tern-api/liveness
  tern-api/networks_subnets tern-api/persistence tern-api/ports tern-api/routers_floatingips
  tern-api/security_groups tern-api/races tern-api/one_commit tern-api/invariants tern-api/limits_quotas
  tern-api/port_queries
  tern-api/https tern-api/nova_events
  tern/status_cli tern/api_crash tern/https_cli
)
for t in "${PURE[@]}"; do STAGE_OF[$t]=pure; done

ALL_STAGES=(build pure etcd ovs lab python lint)
declare -A TITLE=(
  [build]="build (all targets)"
  [pure]="pure: unit, doc, simulation, API"
  [etcd]="store on etcd"
  [ovs]="Open vSwitch"
  [lab]="lab (namespaces, packets)"
  [python]="Python clients, Keystone, Tempest"
  [lint]="fmt + clippy"
)

log_dir="target/test-logs"
mkdir -p "$log_dir"

# Every test file on disk must have a stage; every listed one must exist.
declare -A TARGETS=() # stage -> "crate:test crate:test ..."
bad=0
for f in crates/*/tests/*.rs; do
  crate="${f#crates/}"
  crate="${crate%%/*}"
  name="$(basename "$f" .rs)"
  key="$crate/$name"
  stage="${STAGE_OF[$key]:-}"
  if [ -z "$stage" ]; then
    echo "test: $f is in no stage: add '$key' to STAGE_OF or PURE in scripts/test.sh" >&2
    bad=1
    continue
  fi
  TARGETS[$stage]+=" $crate:$name"
done
for key in "${!STAGE_OF[@]}"; do
  [ -f "crates/${key%%/*}/tests/${key#*/}.rs" ] || {
    echo "test: scripts/test.sh names $key, but crates/${key%%/*}/tests/${key#*/}.rs does not exist" >&2
    bad=1
  }
done
[ "$bad" = 0 ] || exit 2

wanted=("$@")
[ ${#wanted[@]} -gt 0 ] || wanted=("${ALL_STAGES[@]}")
for s in "${wanted[@]}"; do
  [ -n "${TITLE[$s]:-}" ] || {
    echo "test: unknown stage '$s' (expected one of: ${ALL_STAGES[*]})" >&2
    exit 2
  }
done

declare -A SECS=() PASSED=() FAILED=() IGNORED=() STATUS=()
failed_any=0

# Runs one command of a stage, appending its output to the stage's log and to the terminal.
run() {
  local stage="$1"
  shift
  echo "+ $*" | tee -a "$log_dir/$stage.log"
  "$@" 2>&1 | tee -a "$log_dir/$stage.log"
  return "${PIPESTATUS[0]}"
}

# Runs the integration test files of one stage, one cargo invocation per crate.
run_targets() {
  local stage="$1" rc=0
  declare -A by_crate=()
  local t
  for t in ${TARGETS[$stage]:-}; do by_crate[${t%%:*}]+=" --test ${t#*:}"; done
  local crate
  for crate in $(printf '%s\n' "${!by_crate[@]}" | sort); do
    # shellcheck disable=SC2086
    run "$stage" "$CARGO" test -p "$crate" --no-fail-fast ${by_crate[$crate]} || rc=1
  done
  return $rc
}

stage_body() {
  local stage="$1" rc=0
  case "$stage" in
    build) run build "$CARGO" build --workspace --all-targets || rc=1 ;;
    pure)
      run pure "$CARGO" test --workspace --no-fail-fast --lib --bins || rc=1
      run pure "$CARGO" test --workspace --no-fail-fast --doc || rc=1
      run_targets pure || rc=1
      ;;
    lint)
      run lint "$CARGO" fmt --all -- --check || rc=1
      run lint "$CARGO" clippy --workspace --all-targets -- -D warnings || rc=1
      ;;
    *) run_targets "$stage" || rc=1 ;;
  esac
  return $rc
}

for s in "${wanted[@]}"; do
  : >"$log_dir/$s.log"
  echo "==== test stage: ${TITLE[$s]} ===="
  start=$(date +%s.%N)
  if stage_body "$s"; then STATUS[$s]=ok; else
    STATUS[$s]=FAILED
    failed_any=1
  fi
  SECS[$s]=$(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.0f", b - a }')
  # Sum cargo's per-binary result lines ("test result: ok. 12 passed; 0 failed; 1 ignored; ...").
  read -r p f i < <(awk '/^test result:/ {
      for (k = 1; k <= NF; k++) {
        if ($(k+1) ~ /^passed/) p += $k; if ($(k+1) ~ /^failed/) f += $k; if ($(k+1) ~ /^ignored/) i += $k
      } } END { print p+0, f+0, i+0 }' "$log_dir/$s.log")
  PASSED[$s]=$p FAILED[$s]=$f IGNORED[$s]=$i
  echo "==== ${TITLE[$s]}: ${STATUS[$s]} in ${SECS[$s]} s ===="
done

total_secs=0 total_p=0 total_f=0 total_i=0
echo
echo "make test: stages"
printf '%-36s %8s %8s %8s %8s  %s\n' stage seconds passed failed ignored result
for s in "${wanted[@]}"; do
  printf '%-36s %8s %8s %8s %8s  %s\n' "${TITLE[$s]}" "${SECS[$s]}" "${PASSED[$s]}" "${FAILED[$s]}" \
    "${IGNORED[$s]}" "${STATUS[$s]}"
  total_secs=$((total_secs + SECS[$s]))
  total_p=$((total_p + PASSED[$s]))
  total_f=$((total_f + FAILED[$s]))
  total_i=$((total_i + IGNORED[$s]))
done
printf '%-36s %8s %8s %8s %8s\n' total "$total_secs" "$total_p" "$total_f" "$total_i"
echo "(logs: $log_dir/<stage>.log)"
# The plain closing line: every test cargo ran, and every stage that failed without a test failing
# (a build or lint error) counts as one failure.
stage_failures=0
for s in "${wanted[@]}"; do
  [ "${STATUS[$s]}" = ok ] || [ "${FAILED[$s]}" -gt 0 ] || stage_failures=$((stage_failures + 1))
done
echo "tests: $total_p passed, $((total_f + stage_failures)) failed"
exit $failed_any
