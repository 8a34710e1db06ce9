# The two commands a newcomer needs: `make demo` and `make test`. Each installs what it needs
# (a local Python virtual environment with moto and databricks-sdk) and leaves nothing running.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test lint unit integration contract venv clean

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

# Unit tests of every crate, then the integration suite (real binary, moto, emulator), then the
# emulator checked against Databricks' own Python SDK.
test: venv lint
	cargo test --workspace --lib --bins
	cargo test --test integration
	cargo test -p emulator --tests
	cargo build -p emulator --bin databricks-account-emulator
	EMULATOR_BIN=target/debug/databricks-account-emulator $(PY) tests/contract/test_sdk_contract.py

demo: venv
	cargo build --workspace --bins
	$(PY) scripts/demo.py

clean:
	rm -rf $(VENV) target
