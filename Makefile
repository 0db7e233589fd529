# tradewire — the public surface: demo, test, bench, codegen, check-codegen.
SHELL := /bin/bash
export PATH := $(HOME)/.cargo/bin:$(PATH)

VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
CARGO_RELEASE := cargo build --release --locked -p tradewire -p signal-bridge -p market-data \
    -p execution-engine -p tradewire-config --bins
# The Python extensions (tradewire._features, tradewire._wire) are built by pip from these.
EXTENSION_SOURCES := crates/hatch_build.py $(shell find crates/features crates/features-py \
    crates/wire-py crates/tradewire/src/wire.rs -name '*.rs' -o -name Cargo.toml 2>/dev/null)

.PHONY: system-deps demo test bench codegen check-codegen vectors check-vectors lint typecheck \
        pytest cargo-test clippy fmt rust-bins venv clean conformance

## system-deps: cargo and libsodium-dev, installed from Debian when missing (root or sudo)
system-deps:
	@bash .ci/system-deps

venv: $(STAMP)
$(STAMP): pyproject.toml $(EXTENSION_SOURCES) | system-deps
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

rust-bins: system-deps
	$(CARGO_RELEASE)

## demo: the pipeline (market data -> signals -> orders) with a live dashboard
demo: venv rust-bins
	$(VENV)/bin/tradewire demo

## codegen: regenerate Python and Rust code from schema/
codegen: venv
	$(VENV)/bin/tradewire codegen

## check-codegen: fail when committed generated code is stale or the schema breaks the lock
check-codegen: venv
	$(VENV)/bin/tradewire codegen --check
	$(VENV)/bin/tradewire codegen breaking --against schema/tradewire.lock.json
	$(PY) conformance/generate_protocol.py --check

vectors: venv
	$(PY) conformance/generate_vectors.py

check-vectors: venv
	$(PY) conformance/generate_vectors.py --check

lint: venv
	$(VENV)/bin/ruff check src codegen conformance tests benches

typecheck: venv
	$(VENV)/bin/mypy src codegen

fmt: system-deps
	cargo fmt --all --check

clippy: system-deps
	cargo clippy --workspace --all-targets --locked -- -D warnings

pytest: venv rust-bins
	$(VENV)/bin/pytest

cargo-test: system-deps
	cargo test --workspace --release --locked

## test: everything CI runs
test: venv check-codegen check-vectors lint typecheck fmt clippy pytest cargo-test

## bench: benchmarks (off in `make test`)
bench: venv rust-bins
	cargo build --release --locked -p tradewire-bench
	mkdir -p benches/results
	$(VENV)/bin/pytest benches --benchmark-enable --benchmark-only -p no:cacheprovider \
	    --benchmark-json benches/results/micro.json
	$(PY) benches/summarize_micro.py benches/results/micro.json >/dev/null
	$(PY) benches/run_transport.py --out benches/results

## conformance: the interop matrix: Python runner x {Python, Rust} reference testees; the
## transport cases pair Python x Python, Python client/publisher x Rust server/subscriber and
## Rust client/publisher x Python server/subscriber (conformance/README.md)
conformance: venv
	cargo build --release --locked -p conformance-testee
	mkdir -p target/conformance
	$(PY) conformance/generate_protocol.py --check
	$(VENV)/bin/tradewire conformance --quiet --testee "$(PY) -m tradewire.conformance.testee" \
	    --failure-list conformance/failures/python.txt --junit target/conformance/python.xml
	$(VENV)/bin/tradewire conformance --quiet \
	    --testee target/release/tradewire-conformance-testee \
	    --failure-list conformance/failures/rust.txt --junit target/conformance/rust.xml

clean:
	rm -rf $(VENV) target
