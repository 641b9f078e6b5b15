"""The Docker Engine boundary: events, reconciliation, container files, images."""
