#!/usr/bin/env bash
# Fill a directory with every wheel `deploy/install.sh --wheels DIR` needs, on a
# machine that reaches a package index, for hosts that do not (air-gapped fleets).
set -euo pipefail

PROG=$(basename "$0")
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PYTHON=${PYTHON:-python3}
GLIBC=2.28
COLLECTOR=0
DIR=""
LOG=""
SRC=""
ARCHES=()
VERSIONS=()
ALL_ARCHES=(x86_64 aarch64 armv7l)
ALL_VERSIONS=(3.11 3.12 3.13)

usage() {
    cat <<USAGE
Usage: $PROG DIR [--arch ARCH]... [--python-version X.Y]... [--glibc X.Y] [--collector]

Put into DIR (made if absent) what 'install.sh --wheels DIR' installs from on a
host with no package index: a wheel of enoexec built from this checkout
($REPO), its build requirements (install.sh builds from the checkout), and the
agent's dependencies as binary wheels for each ARCH and Python version; with
--collector also the collector's libraries and PostgreSQL's driver. Run it
again with other options to add to the same DIR: one DIR can serve a mixed fleet.

  --arch ARCH           x86_64 (or amd64), aarch64 (arm64), armv7l (armhf);
                        repeatable; default: all three
  --python-version X.Y  the hosts' CPython: 3.11, 3.12 or 3.13; repeatable;
                        default: all three (Debian bookworm has 3.11)
  --glibc X.Y           the oldest glibc among the hosts (default $GLIBC; Debian and
                        Raspberry Pi OS bookworm have 2.36)
  --collector           add the collector's libraries (they have no armv7l wheels:
                        give the collector's --arch, e.g. --collector --arch x86_64)
  -h, --help            show this help

Environment: PYTHON, the interpreter (3.11+, with pip) that builds and downloads
(default python3). pip's own configuration applies (index-url, proxy, cert).

Then copy this checkout and DIR to each host and run, e.g.:
  sudo deploy/install.sh --agent --collector-address collector.example:7469 --wheels DIR
USAGE
}

say() { echo "$PROG: $*"; }
die() { echo "$PROG: $*" >&2; exit 2; }
fail() { echo "$PROG: error: $*" >&2; exit 1; }

# arch NAME: the machine name pip's platform tags use (Debian's names accepted).
arch() {
    case $1 in
        x86_64|amd64) echo x86_64 ;;
        aarch64|arm64) echo aarch64 ;;
        armv7l|armhf|arm/v7) echo armv7l ;;
        *) die "unknown --arch '$1': use x86_64, aarch64 or armv7l" ;;
    esac
}

parse_args() {
    while [ $# -gt 0 ]; do
        case $1 in
            --arch) [ $# -ge 2 ] || die "--arch needs an architecture"; ARCHES+=("$(arch "$2")"); shift ;;
            --arch=*) ARCHES+=("$(arch "${1#*=}")") ;;
            --python-version) [ $# -ge 2 ] || die "--python-version needs X.Y"; VERSIONS+=("$2"); shift ;;
            --python-version=*) VERSIONS+=("${1#*=}") ;;
            --glibc) [ $# -ge 2 ] || die "--glibc needs X.Y"; GLIBC=$2; shift ;;
            --glibc=*) GLIBC=${1#*=} ;;
            --collector) COLLECTOR=1 ;;
            -h|--help) usage; exit 0 ;;
            -*) echo "$PROG: unknown option '$1'" >&2; usage >&2; exit 2 ;;
            *) [ -z "$DIR" ] || die "one DIR only (got '$DIR' and '$1')"; DIR=$1 ;;
        esac
        shift
    done
    [ -n "$DIR" ] || { usage >&2; exit 2; }
    [ "${#ARCHES[@]}" -gt 0 ] || ARCHES=("${ALL_ARCHES[@]}")
    [ "${#VERSIONS[@]}" -gt 0 ] || VERSIONS=("${ALL_VERSIONS[@]}")
    local v
    for v in "${VERSIONS[@]}"; do
        [[ $v =~ ^3\.(1[1-9]|[2-9][0-9])$ ]] || die "--python-version '$v' is not a CPython 3.11 or later (X.Y)"
    done
    [[ $GLIBC =~ ^2\.([0-9]+)$ ]] && [ "${BASH_REMATCH[1]}" -ge 17 ] \
        || die "--glibc '$GLIBC' is not a glibc version 2.17 or later (X.Y)"
}

# platforms MACHINE: pip --platform options for a glibc of GLIBC or later on MACHINE
# (pip does not widen manylinux_2_X on its own; linux_armv7l is what PyPI's Pi wheels use).
platforms() {
    local m=$1 minor
    for ((minor = 17; minor <= ${GLIBC#2.}; minor++)); do
        printf -- '--platform=manylinux_2_%s_%s\n' "$minor" "$m"
    done
    printf -- '--platform=manylinux2014_%s\n' "$m"
    [ "$m" != x86_64 ] || printf -- '--platform=manylinux2010_x86_64\n--platform=manylinux1_x86_64\n'
    printf -- '--platform=linux_%s\n' "$m"
}

preflight() {
    command -v "$PYTHON" >/dev/null || die "$PYTHON not found: install Python 3.11 or later, or set PYTHON"
    "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
        || die "$PYTHON is older than 3.11 (it reads pyproject.toml with tomllib): set PYTHON to a newer interpreter"
    "$PYTHON" -m pip --version >/dev/null 2>&1 \
        || die "$PYTHON has no pip: install it (apt-get install python3-pip) or set PYTHON to an interpreter with pip"
}

# reason LOG: pip's lines that say why it failed.
reason() {
    grep -E '(ERROR|error):|Temporary failure in name resolution|Failed to establish a new connection' "$1" \
        | sed -E 's/^[[:space:]]+//' | awk '!seen[$0]++' | tail -n 6 | sed "s/^/$PROG:   /" >&2 || tail -n 5 "$1" >&2
}

main() {
    parse_args "$@"
    preflight
    mkdir -p "$DIR"
    DIR=$(cd "$DIR" && pwd)
    local log wheel build_reqs tags m v extra="" n
    LOG=$(mktemp)
    SRC=$(mktemp -d)
    trap 'rm -rf "$LOG" "$SRC"' EXIT
    log=$LOG
    # The package itself, pure Python: one wheel for every host, built from a copy of
    # the checkout (a build/ left in it by an earlier build would bring back modules
    # deleted since; the build's own build/ and egg-info stay out of the checkout).
    tar -C "$REPO" --exclude=./.git --exclude=./.venv --exclude=./build --exclude='*.egg-info' --exclude=./.enoexec \
        --exclude=./wheelhouse --exclude=__pycache__ --exclude=.mypy_cache --exclude=.ruff_cache --exclude=.pytest_cache \
        -cf - . | tar -C "$SRC" -xf -
    rm -f "$DIR"/enoexec-*.whl
    say "building the enoexec wheel from $REPO"
    "$PYTHON" -m pip wheel --quiet --no-deps --wheel-dir "$DIR" "$SRC" >"$log" 2>&1 \
        || { reason "$log"; fail "could not build the enoexec wheel from $REPO"; }
    wheel=$(ls "$DIR"/enoexec-*.whl)
    mapfile -t build_reqs < <("$PYTHON" -c 'import sys, tomllib; print("\n".join(tomllib.load(open(sys.argv[1], "rb"))["build-system"]["requires"]))' "$REPO/pyproject.toml")
    [ "$COLLECTOR" = 0 ] || extra="[postgres]"
    for v in "${VERSIONS[@]}"; do
        for m in "${ARCHES[@]}"; do
            mapfile -t tags < <(platforms "$m")
            if ! "$PYTHON" -m pip download --quiet --only-binary=:all: --implementation cp --python-version "$v" \
                    "${tags[@]}" --dest "$DIR" "$wheel$extra" "${build_reqs[@]}" >"$log" 2>&1; then
                reason "$log"
                if grep -qE 'No matching distribution|ResolutionImpossible' "$log"; then
                    fail "a dependency has no wheel for CPython $v on $m (glibc $GLIBC or older)${extra:+ with --collector}: leave that --arch or --python-version out"
                fi
                fail "pip could not download the wheels for CPython $v on $m (see its reason above)"
            fi
            say "CPython $v on $m: done"
        done
    done
    n=$(find "$DIR" -maxdepth 1 -name '*.whl' | wc -l)
    say "$DIR holds $n wheels ($(du -sh "$DIR" | cut -f1)); copy it with this checkout to each host and run:"
    say "  sudo deploy/install.sh --agent --collector-address HOST:7469 --wheels DIR   (--collector for the collector)"
}

main "$@"
