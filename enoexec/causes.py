"""The causes of an exec format error and of its look-alikes: the words both
programs, the API and the metrics use.

The table of causes and their evidence is in the README (section "Causes").
Every event also says how the container died (``failure``): ``exec_format_error``
(the kernel refused the file with ENOEXEC: ``enoexec_exits_total`` and the
``EnoexecExecFormatErrors`` alert) or ``start_failure`` (a look-alike: the
runtime's "no such file or directory" for a file that exists, or a crash in the
first seconds with file evidence; ``enoexec_start_failures_total`` and the
``EnoexecStartFailures`` alert); or ``emulated``, a warning about a container that
runs, but through QEMU emulation (never counted as an exit).
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
# Look-alikes, and a corrupt file (which may die either way).
CORRUPT_FILE = "corrupt_file"
MISSING_LOADER = "missing_loader"
CRLF_SHEBANG = "crlf_shebang"
MISSING_INTERPRETER = "missing_interpreter"
CPU_LEVEL = "cpu_level"
PAGE_SIZE = "page_size"
# Not a death: a running container whose entrypoint the host runs through QEMU (binfmt_misc).
EMULATED = "emulated"

EXEC_FORMAT_ERROR = "exec_format_error"
START_FAILURE = "start_failure"
# The failure kind of the emulation warning: never counted as an exit.
EMULATED_WARNING = "emulated"
FAILURES = frozenset({EXEC_FORMAT_ERROR, START_FAILURE, EMULATED_WARNING})

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
        CORRUPT_FILE,
        MISSING_LOADER,
        CRLF_SHEBANG,
        MISSING_INTERPRETER,
        CPU_LEVEL,
        PAGE_SIZE,
        EMULATED,
    }
)
