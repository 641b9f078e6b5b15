"""The collector serves grpc.health.v1 (Kubernetes gRPC probes): SERVING while it takes
streams, NOT_SERVING as soon as it starts draining (issue #18 item 6)."""

from __future__ import annotations

import signal
import threading
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests import procs


def test_health_is_serving_then_not_serving_while_draining(collector: Any) -> None:
    col = collector()
    with grpc.insecure_channel(f"127.0.0.1:{col.grpc}") as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        for service in ("", "enoexec.v1.Collector"):
            assert stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=10).status == \
                health_pb2.HealthCheckResponse.SERVING
        unknown = None
        try:
            stub.Check(health_pb2.HealthCheckRequest(service="nope"), timeout=10)
        except grpc.RpcError as e:
            unknown = e.code()
        assert unknown == grpc.StatusCode.NOT_FOUND
        seen: list[int] = []
        watch = stub.Watch(health_pb2.HealthCheckRequest(service="enoexec.v1.Collector"), timeout=30)

        def follow() -> None:
            try:
                for res in watch:
                    seen.append(res.status)
            except grpc.RpcError:
                pass  # the server stops after draining

        t = threading.Thread(target=follow, daemon=True)
        t.start()
        procs.wait_for(lambda: seen == [health_pb2.HealthCheckResponse.SERVING], timeout=10, what="the watch's first answer")
        assert col.popen is not None
        col.popen.send_signal(signal.SIGTERM)
        procs.wait_for(lambda: health_pb2.HealthCheckResponse.NOT_SERVING in seen, timeout=20, what="NOT_SERVING while draining")
        t.join(timeout=30)
