# enoexec: common tasks, run from the repository root.
PROTO_SRC := protos/enoexec/v1/enoexec.proto
VENV ?= .venv
PYTHON ?= $(VENV)/bin/python
# Generated code lands in the core package: protos/enoexec/v1/x.proto -> enoexec/v1/x_pb2.py.
PROTOC = $(PYTHON) -m grpc_tools.protoc -Iprotos --python_out=. --pyi_out=. --grpc_python_out=. $(PROTO_SRC)
# containerd's API (Apache-2.0, vendored by protos/third_party/containerd/vendor.py at a pinned tag)
# generates apart from ours, imported as enoexec.third_party.containerd.api...: the virtual
# include path maps that import prefix onto the vendored directory.
CTRD_DIR := protos/third_party/containerd
CTRD_PKG := enoexec/third_party/containerd
CTRD_SRC = $(sort $(patsubst $(CTRD_DIR)/%,$(CTRD_PKG)/%,$(shell find $(CTRD_DIR)/api $(CTRD_DIR)/criapi -name '*.proto')))
PROTOC_CTRD = $(PYTHON) -m grpc_tools.protoc -I$(CTRD_PKG)=$(CTRD_DIR) --python_out=. --pyi_out=. --grpc_python_out=. $(CTRD_SRC) \
	&& find $(CTRD_PKG) -type d -exec touch {}/__init__.py \;

.PHONY: venv proto proto-check lint test bench-smoke quickstart wheels mutation

# A virtual environment with the package, its test and dev extras.
venv: $(VENV)/.installed
$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -e '.[collector,postgres,test,dev]'
	touch $@

# Regenerate the protobuf and gRPC code from protos/.
proto: venv
	$(PROTOC)
	$(PROTOC_CTRD)

# Fail when the committed generated code differs from what `make proto` makes.
proto-check: venv
	$(PROTOC)
	$(PROTOC_CTRD)
	git diff --exit-code -- enoexec/v1/ $(CTRD_PKG)/ || (echo "generated protobuf code is stale: run 'make proto' and commit" >&2; exit 1)
	test -z "$$(git status --porcelain -- enoexec/v1/ $(CTRD_PKG)/)" || (echo "generated protobuf code is not committed: run 'make proto' and commit" >&2; exit 1)

# Static checks: unused names and import order (ruff), types (mypy).
lint: venv
	$(VENV)/bin/ruff check enoexec agent collector tests benchmarks
	$(VENV)/bin/mypy enoexec agent collector

# The test command (README, .ci/run): unit and integration tests.
test: venv
	$(PYTHON) -m pytest -p no:cacheprovider -q -rs

# The collector benchmarks in their --quick mode (each under a minute): CI checks they run, not their figures.
bench-smoke: venv
	$(PYTHON) benchmarks/ingest_bench.py --quick
	$(PYTHON) benchmarks/fleet_bench.py --quick
	$(PYTHON) benchmarks/scrape_bench.py --quick
	PYTHONPATH=. $(PYTHON) benchmarks/agent_imports_bench.py --quick
	PYTHONPATH=. $(PYTHON) benchmarks/agent_footprint_bench.py --quick
	PYTHONPATH=. $(PYTHON) benchmarks/detection_latency_bench.py --quick
	PYTHONPATH=. $(PYTHON) benchmarks/check_bench.py --quick
	PYTHONPATH=. $(PYTHON) benchmarks/inventory_bench.py --quick

# Mutation testing (mutmut, from the dev extra) of the modules [tool.mutmut] names, against
# tests/unit only; not in CI: about 45 minutes on 2 shared cores (README, "Mutation testing").
# One survivor: $(VENV)/bin/mutmut show NAME.
mutation: venv
	rm -rf mutants
	$(VENV)/bin/mutmut run --max-children 2
	$(VENV)/bin/mutmut results

quickstart:
	bash deploy/quickstart.sh

# Wheels for hosts with no package index (deploy/README.md): `make wheels WHEELS=DIR
# FETCH_ARGS="--collector --arch x86_64"`, then `deploy/install.sh --wheels DIR` on each host.
WHEELS ?= wheelhouse
wheels:
	bash deploy/fetch-wheels.sh $(WHEELS) $(FETCH_ARGS)
