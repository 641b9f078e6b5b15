"""The JSON form of the wire messages: what the API serves and ``diagnose --json`` prints.

Proto3's JSON mapping writes 64-bit integers (``memory_bytes``, spool counts) as
strings, for JavaScript's sake. Our JSON is read by people, jq and Python, and
none of these values comes near 2**53, so they are converted back to numbers here,
at the JSON boundary (README.md, "HTTP API").
"""

from __future__ import annotations

from typing import Any

from google.protobuf import json_format
from google.protobuf.descriptor import Descriptor, FieldDescriptor

_INT64 = {
    FieldDescriptor.TYPE_INT64, FieldDescriptor.TYPE_UINT64, FieldDescriptor.TYPE_SINT64,
    FieldDescriptor.TYPE_FIXED64, FieldDescriptor.TYPE_SFIXED64,
}


def to_json(message: Any) -> dict[str, Any]:
    """Canonical JSON of a protobuf message, proto field names, defaults included, 64-bit integers as numbers."""
    doc = json_format.MessageToDict(
        message, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
    )
    _numbers(message.DESCRIPTOR, doc)
    return doc


def _numbers(descriptor: Descriptor, doc: dict[str, Any]) -> None:
    for field in descriptor.fields:
        value = doc.get(field.name)
        if value is None:
            continue
        repeated = isinstance(value, list)
        if field.type in _INT64:
            doc[field.name] = [int(v) for v in value] if repeated else int(value)
        elif field.type == FieldDescriptor.TYPE_MESSAGE:
            if field.message_type.full_name.startswith("google.protobuf."):
                continue  # well-known types (Timestamp...) have their own JSON form
            for item in value if repeated else [value]:
                if isinstance(item, dict):
                    _numbers(field.message_type, item)
