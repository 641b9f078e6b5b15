# enoexec: common tasks, run from the repository root.
PROTO_SRC := protos/enoexec/v1/enoexec.proto
VENV ?= .venv
PYTHON ?= $(VENV)/bin/python
PROTOC = $(PYTHON) -m grpc_tools.protoc -Iprotos --python_out=protos --pyi_out=protos --grpc_python_out=protos $(PROTO_SRC)

.PHONY: venv proto proto-check lint test quickstart

# A virtual environment with the package, its test and dev extras.
venv: $(VENV)/.installed
$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -e '.[test,dev]'
	touch $@

# Regenerate the protobuf and gRPC code from protos/.
proto: venv
	$(PROTOC)

# Fail when the committed generated code differs from what `make proto` makes.
proto-check: venv
	$(PROTOC)
	git diff --exit-code -- protos/ || (echo "generated protobuf code is stale: run 'make proto' and commit" >&2; exit 1)

# Static checks: unused names and import order (ruff), types (mypy).
lint: venv
	$(VENV)/bin/ruff check agent collector tests benchmarks
	$(VENV)/bin/mypy agent collector

# The test command (README, .ci/run): unit and integration tests.
test: venv
	$(PYTHON) -m pytest -p no:cacheprovider -q

quickstart:
	bash deploy/quickstart.sh
