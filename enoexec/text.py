"""Strings safe to print on a terminal. Pure.

Image names, file names, log lines and hint text come from images and
containers a stranger may have built: written raw, an ESC or BEL byte in them
would drive the reader's terminal (move the cursor, rewrite earlier lines, set
the window title). Every human-readable renderer passes such strings through
``printable``; JSON output is left to the JSON encoder, which escapes them.
"""

from __future__ import annotations

import unicodedata

_KEEP = {"\n", "\t"}


def _escape(ch: str) -> str:
    n = ord(ch)
    if n < 0x100:
        return f"\\x{n:02x}"
    return f"\\u{n:04x}" if n < 0x10000 else f"\\U{n:08x}"


def printable(value: object, *, keep_newlines: bool = True) -> str:
    """``value`` as text with control and format characters shown as ``\\xNN``.

    C0 and C1 controls (ESC, BEL, CR, backspace...), DEL, and Unicode format,
    separator and unassigned characters (bidi overrides, zero-width joiners)
    are escaped; newlines and tabs are kept unless ``keep_newlines`` is false.
    """
    s = str(value)
    if s.isprintable():
        return s
    out = []
    for ch in s:
        if ch in _KEEP and keep_newlines:
            out.append(ch)
        elif ch == " " or ch.isprintable():
            out.append(ch)
        elif unicodedata.category(ch) in ("Zs",):
            out.append(ch)
        else:
            out.append(_escape(ch))
    return "".join(out)


def oneline(value: object) -> str:
    """``value`` on one printable line: newlines and tabs escaped too."""
    return printable(value, keep_newlines=False)
