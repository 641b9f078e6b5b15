"""Copy the subset of containerd's API the agent speaks, from a containerd checkout.

    python protos/third_party/containerd/vendor.py /path/to/containerd v1.6.20

Reads ``api/**.proto`` at the given tag (``git show``), and writes them under
``protos/third_party/containerd/api/`` with two mechanical edits, so the
generated Python code imports nothing but ``google.protobuf`` and itself:

- gogo/protobuf and containerd's fieldpath plugin options are dropped (the
  ``import weak`` lines, ``option (gogoproto.*)``/``(containerd.plugin.*)`` lines
  and ``[(gogoproto.*) = ...]`` field options). They change Go code only: the
  packages, services, messages, field names and numbers (the wire) are untouched.
- ``import "github.com/containerd/containerd/api/..."`` becomes
  ``import "enoexec/third_party/containerd/api/..."``: the import path of the
  generated modules (``make proto`` maps that prefix onto this directory).
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

FILES = (
    "api/events/container.proto",
    "api/events/task.proto",
    "api/services/containers/v1/containers.proto",
    "api/services/content/v1/content.proto",
    "api/services/events/v1/events.proto",
    "api/services/images/v1/images.proto",
    "api/services/snapshots/v1/snapshots.proto",
    "api/services/tasks/v1/tasks.proto",
    "api/services/version/v1/version.proto",
    "api/types/descriptor.proto",
    "api/types/metrics.proto",
    "api/types/mount.proto",
    "api/types/platform.proto",
    "api/types/task/task.proto",
)
# The kubelet's side of the CRI (k8s.io/cri-api v0.25.0, Apache-2.0, as vendored in containerd at
# that tag): the tests drive containerd's CRI plugin through it; the agent does not use it.
RENAMED = {"vendor/k8s.io/cri-api/pkg/apis/runtime/v1/api.proto": "criapi/runtime/v1/api.proto"}
HERE = Path(__file__).resolve().parent
OUR_PREFIX = "enoexec/third_party/containerd/"
THEIR_PREFIX = "github.com/containerd/containerd/"

_WEAK_IMPORT = re.compile(r'^\s*import (?:weak )?"[^"]*(?:gogo|fieldpath)[^"]*";\s*\n', re.M)
_OPTION_LINE = re.compile(r"^\s*option \((?:gogoproto|containerd\.plugin)\.[^)]+\)\s*=[^;]*;\s*\n", re.M)
_FIELD_OPTION = re.compile(r'\(gogoproto\.\w+\)\s*=\s*(?:"[^"]*"|[\w.]+)\s*,?\s*')
_EMPTY_BRACKETS = re.compile(r"\s*\[\s*\]")


def strip(text: str) -> str:
    """The .proto text without gogo/fieldpath options, importing our path for containerd's files."""
    text = _WEAK_IMPORT.sub("", text)
    text = _OPTION_LINE.sub("", text)
    text = _FIELD_OPTION.sub("", text)
    text = re.sub(r",\s*\]", "]", text)
    text = _EMPTY_BRACKETS.sub("", text)
    text = text.replace(f'import "{THEIR_PREFIX}api/', f'import "{OUR_PREFIX}api/')
    if "gogoproto" in text or "containerd.plugin" in text:
        raise SystemExit("an option was left behind: extend vendor.py")
    return text


def main(argv: list[str]) -> int:
    checkout, tag = Path(argv[1]), argv[2]
    for name in (*FILES, *RENAMED):
        original = subprocess.run(["git", "-C", str(checkout), "show", f"{tag}:{name}"],
                                  check=True, capture_output=True, text=True).stdout
        header = (f"// Vendored from containerd {tag}, {name} (Apache-2.0, see NOTICE);\n"
                  "// gogo/fieldpath options removed and imports renamed by vendor.py. Do not edit.\n")
        out = HERE / RENAMED.get(name, name)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(header + strip(original))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
