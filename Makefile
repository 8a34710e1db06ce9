# The two commands a newcomer needs: `make demo` and `make test`. Each installs what it needs
# (a local Python virtual environment with moto and databricks-sdk) and leaves nothing running.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test lint template-test docs-test package venv clean local-world

$(STAMP): tests/requirements.txt
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(PY) -m pip install --quiet --disable-pip-version-check -r tests/requirements.txt
	touch $(STAMP)

venv: $(STAMP)

lint: venv
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings
	$(VENV)/bin/cfn-lint template.yaml

# template.yaml against the service limits, the deletion policies and the calls the code makes
# (no AWS account needed; about a second).
template-test: venv
	$(PY) tests/template/test_template.py

# The repository stands alone: no file cites a document outside it or an issue number, and every
# docs/<page>.md#<anchor> pointer names a heading that exists; the README's reference tables
# list every template parameter and output, resource property and attribute, and none is broken
# (about a second).
docs-test: venv
	$(PY) tests/docs/test_self_contained.py
	$(PY) tests/docs/test_readme_reference.py
	$(PY) tests/docs/test_imports.py

# The template and docs checks, unit tests of every crate, then the integration suite (real
# binary, moto, emulator), then the emulator checked against Databricks' own Python SDK.
test: venv lint template-test docs-test
	cargo test --workspace --lib --bins
	cargo test --test integration
	cargo test -p emulator --tests
	cargo build -p emulator --bin databricks-account-emulator
	EMULATOR_BIN=target/debug/databricks-account-emulator $(PY) tests/contract/test_sdk_contract.py

demo: venv
	cargo build --workspace --bins
	$(PY) scripts/demo.py

# moto and the emulator seeded with a VPC, both endpoints, a workspace and a secret, plus an
# env.json and events with their ids in .local-world/, for `sam local invoke`; up until Ctrl-C.
# On Linux with `sam local invoke --docker-network host`: make local-world LOCAL_WORLD_HOST=127.0.0.1
LOCAL_WORLD_HOST ?= host.docker.internal
local-world: venv
	cargo build -p emulator --bin databricks-account-emulator
	$(PY) scripts/local_world.py --host $(LOCAL_WORLD_HOST)

# The README's "Benchmarks" figures: table on stdout, JSON in bench-results/latest.json.
# Profile bench-fast by default (Cargo.toml says why); `make bench BENCH_PROFILE=release` measures
# the shipped profile instead. Two builds, not one with both packages: Cargo would otherwise
# unify the emulator's tokio features into the measured binary.
BENCH_PROFILE ?= bench-fast
.PHONY: bench
bench: venv
	cargo build --profile $(BENCH_PROFILE) -p databricks-backend-privatelink --bin databricks-backend-privatelink
	cargo build --profile $(BENCH_PROFILE) -p emulator --bin databricks-account-emulator
	$(PY) scripts/bench.py --profile $(BENCH_PROFILE)

# The deployment package the way `sam build` makes it (cargo-lambda, release, arm64, the binary
# template.yaml names), zipped, and its size. About 20 minutes from cold on a 2-core machine: not
# part of `make test` or CI. Needs cargo-lambda and Zig (README "Deploy").
PACKAGE_ZIP = $${CARGO_TARGET_DIR:-target}/lambda/databricks-backend-privatelink/bootstrap.zip
package:
	cargo lambda build --release --arm64 --output-format zip --bin databricks-backend-privatelink
	@echo "$(PACKAGE_ZIP): $$(wc -c < $(PACKAGE_ZIP)) bytes"

clean:
	rm -rf $(VENV) target
