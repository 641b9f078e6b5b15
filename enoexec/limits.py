"""The contract's validity rules and size limits, checked by the collector and by the agent on itself."""

from __future__ import annotations

import re

MAX_ID = 128
MAX_LABEL = 200
MAX_EVENT_BYTES = 64 * 1024
_EVENT_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
_HOST_ID = re.compile(r"^[A-Za-z0-9._:@-]{1,128}$")
HOST_ID_RULE = "1 to 128 characters of A-Z a-z 0-9 . _ : @ -"


def valid_event_id(event_id: str) -> bool:
    return bool(_EVENT_ID.match(event_id))


def valid_host_id(host_id: str) -> bool:
    return bool(_HOST_ID.match(host_id))
