"""The JSON form of the wire messages: what the API serves and ``diagnose --json`` prints."""

from __future__ import annotations

from typing import Any

from google.protobuf import json_format


def to_json(message: Any) -> dict[str, Any]:
    """Canonical JSON of a protobuf message, proto field names, defaults included."""
    return json_format.MessageToDict(
        message, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
    )
