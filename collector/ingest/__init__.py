"""Ingest: the gRPC service, validation, presence, the group writer and rate limits."""
