# Regenerate the protobuf and gRPC code from protos/ (run from the repository root).
PROTO_SRC := protos/enoexec/v1/enoexec.proto
PYTHON ?= python3

.PHONY: proto proto-check test
proto:
	$(PYTHON) -m grpc_tools.protoc -Iprotos --python_out=protos --pyi_out=protos --grpc_python_out=protos $(PROTO_SRC)

# Fails when the committed generated code differs from what `make proto` makes.
proto-check:
	$(PYTHON) -m grpc_tools.protoc -Iprotos --python_out=protos --pyi_out=protos --grpc_python_out=protos $(PROTO_SRC)
	git diff --exit-code -- protos/ || (echo "generated protobuf code is stale: run 'make proto' and commit" >&2; exit 1)

test:
	$(PYTHON) -m pytest
