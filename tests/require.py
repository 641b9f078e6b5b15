"""Skip a test for a missing tool, except in CI, where a missing tool is a failure.

``.ci/run`` sets ``ENOEXEC_REQUIRE_INTEGRATION=1`` so that integration tests
cannot pass by silently skipping.
"""

from __future__ import annotations

import os
from typing import NoReturn

import pytest


def missing(reason: str) -> NoReturn:
    if os.environ.get("ENOEXEC_REQUIRE_INTEGRATION") == "1":
        pytest.fail(f"required for CI: {reason}", pytrace=False)
    pytest.skip(reason)
