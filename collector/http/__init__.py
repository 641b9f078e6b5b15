"""The HTTP side: the JSON API, Prometheus metrics and the hints view."""
