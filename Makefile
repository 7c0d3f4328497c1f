# The two commands of the README. Both work as root on a fresh Debian machine.
CARGO ?= cargo

.PHONY: demo test deps pyenv bench

# Three hypervisors (network namespaces with their own OVS), two networks, VMs pinging across them.
demo: deps
	$(CARGO) build --release -p tern
	target/release/tern lab demo

test: deps pyenv
	$(CARGO) build --workspace --all-targets
	$(CARGO) test --workspace --no-fail-fast
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

deps:
	scripts/install-deps.sh

# The openstacksdk compatibility test's virtualenv (target/python-venv).
pyenv:
	scripts/python-env.sh

bench: deps
	$(CARGO) bench -p tern-store
	$(CARGO) bench -p tern-controller --bench bundle
	$(CARGO) bench -p tern --bench api_ports
