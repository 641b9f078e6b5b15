"""Getting events to the collector: the durable spool, the gRPC stream, the wire encoders."""
