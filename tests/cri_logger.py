#!/usr/bin/env python3
"""A containerd shim logging binary that writes the CRI log format, for tests.

Stands in for containerd's CRI plugin, which the tests cannot drive without a
kubelet: the kubelet asks the CRI plugin to write each container attempt's
output to ``/var/log/pods/<ns>_<pod>_<uid>/<container>/<restartCount>.log`` as
``<RFC 3339 nano time> <stream> <F|P> <text>`` lines; this writes the same
lines to the file named by ``path``. containerd's shim starts it for a task
created with the log URI ``binary:///ABS/PATH/cri_logger.py?path=/LOG/FILE``:
fd 3 is the task's stdout, fd 4 its stderr, and closing fd 5 says "ready".
Standard library only (the shim runs it with the system's python3).
"""

import os
import sys
import threading
from datetime import UTC, datetime

MAX_LINE = 16 * 1024  # the CRI plugin's default max_container_log_line_size


def stamp() -> str:
    now = datetime.now(UTC)
    return now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond:06d}000Z"


def pump(fd: int, stream: str, out, lock: threading.Lock) -> None:
    with os.fdopen(fd, "rb") as f:
        for line in f:
            full = line.endswith(b"\n")
            text = line.rstrip(b"\n")
            chunks = [text[i:i + MAX_LINE] for i in range(0, len(text), MAX_LINE)] or [b""]
            with lock:
                for i, chunk in enumerate(chunks):
                    tag = "F" if full and i == len(chunks) - 1 else "P"
                    out.write(f"{stamp()} {stream} {tag} ".encode() + chunk + b"\n")
                out.flush()


def main() -> int:
    args = dict(zip(sys.argv[1::2], sys.argv[2::2], strict=False))
    path = args["path"]
    os.makedirs(os.path.dirname(path), exist_ok=True)
    out = open(path, "ab")  # noqa: SIM115
    os.close(5)  # ready
    lock = threading.Lock()
    threads = [threading.Thread(target=pump, args=(fd, s, out, lock)) for fd, s in ((3, "stdout"), (4, "stderr"))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    out.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
