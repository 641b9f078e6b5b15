"""The causes of an exec format error: the words both programs, the API and the metrics use.

The table of causes and their evidence is in the README (section "Causes").
"""

from __future__ import annotations

ARCH_MISMATCH = "arch_mismatch"
NO_32BIT_SUPPORT = "no_32bit_support"
MISLABELED_IMAGE = "mislabeled_image"
MISSING_SHEBANG = "missing_shebang"
BOM_BEFORE_SHEBANG = "bom_before_shebang"
FOREIGN_OS_BINARY = "foreign_os_binary"
EMPTY_FILE = "empty_file"
NOT_A_BINARY = "not_a_binary"
UNKNOWN = "unknown"

CAUSES = frozenset(
    {
        ARCH_MISMATCH,
        NO_32BIT_SUPPORT,
        MISLABELED_IMAGE,
        MISSING_SHEBANG,
        BOM_BEFORE_SHEBANG,
        FOREIGN_OS_BINARY,
        EMPTY_FILE,
        NOT_A_BINARY,
        UNKNOWN,
    }
)
