# tradewire — the public surface: demo, test, bench, codegen, check-codegen.
SHELL := /bin/bash
export PATH := $(HOME)/.cargo/bin:$(PATH)

VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
CARGO_RELEASE := cargo build --release --locked -p tradewire -p signal-bridge -p market-data \
    -p execution-engine -p tradewire-config --bins
# The Python extensions (tradewire._features, tradewire._wire, tradewire._rules) are built by
# pip from these.
EXTENSION_SOURCES := crates/hatch_build.py Cargo.lock $(shell find crates/features crates/features-py \
    crates/wire-py crates/rules crates/rules-py crates/tradewire/src -name '*.rs' -o -name Cargo.toml \
    2>/dev/null)

.PHONY: system-deps demo test bench codegen check-codegen vectors check-vectors lint format \
        typecheck pytest cargo-test clippy fmt rust-bins venv lock check-lock clean conformance

# Python code checked by ruff (lint and format)
PY_SOURCES := src codegen conformance tests benches reference_services crates/hatch_build.py

## system-deps: cargo and libsodium-dev, installed from Debian when missing (root or sudo)
system-deps:
	@bash .ci/system-deps

## venv: .venv/ exactly as uv.lock pins it (every extra and the dev tools), tradewire editable
venv: $(STAMP)
$(STAMP): pyproject.toml uv.lock $(EXTENSION_SOURCES) | system-deps
	VENV=$(VENV) bash .ci/python-env
	touch $@

## lock: re-resolve uv.lock after changing dependencies in pyproject.toml
## (`make lock UPGRADE=1` also moves every pin to the newest allowed release)
lock:
	@VENV=$(VENV) bash .ci/python-env --uv-only
	$(VENV)/bin/uv lock $(if $(UPGRADE),--upgrade)

## check-lock: fail when uv.lock no longer matches pyproject.toml
check-lock: venv
	@$(VENV)/bin/uv lock --check --quiet || { echo "uv.lock is out of date with \
	pyproject.toml: run \`make lock\` and commit uv.lock" >&2; exit 1; }

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
	$(VENV)/bin/ruff check $(PY_SOURCES)

## format: Python formatting (ruff format --check; `ruff format` fixes it)
format: venv
	$(VENV)/bin/ruff format --check $(PY_SOURCES)

typecheck: venv
	$(VENV)/bin/mypy src codegen reference_services/python benches conformance/*.py tests

fmt: system-deps
	cargo fmt --all --check

clippy: system-deps
	cargo clippy --workspace --all-targets --locked -- -D warnings

## pytest: the Python tests, with a throwaway PostgreSQL server unless
## TRADEWIRE_TEST_POSTGRES_URL names one
pytest: venv rust-bins
	bash .ci/with-postgres $(VENV)/bin/pytest

cargo-test: system-deps
	cargo test --workspace --release --locked

## test: everything CI runs
test: venv check-lock check-codegen check-vectors lint format typecheck fmt clippy pytest cargo-test

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
