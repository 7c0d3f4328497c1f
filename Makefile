# The two commands of the README. Both work as root on a fresh Debian machine.
CARGO ?= cargo
export CARGO

.PHONY: demo test deps pyenv bench fresh-check

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

bench: deps
	$(CARGO) bench -p tern-store
	$(CARGO) bench -p tern-controller --bench bundle
	$(CARGO) bench -p tern-controller --bench port_flows
	$(CARGO) bench -p tern-controller --bench scale
	$(CARGO) bench -p tern-controller --bench cloud_move
	$(CARGO) bench -p tern --bench api_ports

# `make demo` and `make test` in a freshly bootstrapped Debian 12 root: catches a missing install step.
fresh-check:
	scripts/fresh-check.sh
