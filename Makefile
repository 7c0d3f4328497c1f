# The two commands of the README. Both work as root on a fresh Debian machine.
CARGO ?= cargo
export CARGO

.PHONY: demo test deps pyenv bench bench-scale bench-api bench-auth fresh-check

# Three hypervisors (network namespaces with their own OVS), two networks, VMs pinging across them.
demo: deps
	$(CARGO) build --release -p tern
	target/release/tern lab demo

# Every test, in timed stages (build, pure, etcd, OVS, lab, Python clients, lint): scripts/test.sh.
test: deps pyenv
	scripts/test.sh

deps:
	scripts/install-deps.sh

# The openstacksdk compatibility test's virtualenv (target/python-venv).
pyenv:
	scripts/python-env.sh

bench: deps pyenv
	$(CARGO) bench -p tern-store
	$(CARGO) bench -p tern-controller --bench bundle
	$(CARGO) bench -p tern-controller --bench port_flows
	$(CARGO) bench -p tern-controller --bench scale
	$(CARGO) bench -p tern-controller --bench cloud_move
	$(CARGO) bench -p tern-api --bench api_scale
	$(CARGO) bench -p tern --bench api_auth

# What an NB change costs as the cloud grows: one chassis at 1,000 to 30,000 ports beside the
# whole-cloud recompute, a thousand chassis in one process, and the lab's migration blackouts on an
# empty NB against one loaded with 10,000 ports and churning (as root; about 30 minutes).
bench-scale: deps
	$(CARGO) bench -p tern-controller --bench scale
	$(CARGO) bench -p tern-controller --bench fleet
	$(CARGO) build --release -p tern
	scripts/lab-scale.sh

# Port creation and port queries over the HTTP API as one network fills to 10,000 ports, on redb and
# on etcd (8 clients): creates of ports 9,501-10,000 against the first 500 (goal: within 1.5x), and
# GET /v2.0/ports?device_id=X from the port index beside the same query by scanning (a few minutes).
bench-api: deps
	$(CARGO) bench -p tern-api --bench api_scale

# The API with Keystone auth on (a real Keystone from target/python-venv, tokens cached) beside no
# auth: port create and lists at 8 clients, p50/p99 of both; the cached validation itself (goal: under
# 5% of each p50) and an uncached one (Keystone's round trip) for scale (about a minute).
bench-auth: deps pyenv
	$(CARGO) bench -p tern --bench api_auth

# `make demo` and `make test` in a freshly bootstrapped Debian 12 root: catches a missing install step.
fresh-check:
	scripts/fresh-check.sh
