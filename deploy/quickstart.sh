#!/usr/bin/env bash
# shellcheck disable=SC2317
usage() {
    cat <<'EOF'
enoexec quick start on one machine: install what is missing (docker.io,
python3-venv), then run a collector (SQLite) and an agent watching the Docker
Engine, in the background, with their logs and data under ./.enoexec/.

usage: bash deploy/quickstart.sh [--demo] [--stop]

  (no option)   start the collector and the agent (idempotent)
  --demo        start, then run a foreign-architecture image once and show it counted
  --stop        stop both; with the demo's containers and images removed
  --help        this text

environment:
  DOCKER_HOST         the Docker Engine to watch (default unix:///var/run/docker.sock);
                      when it is not local, it must already be running
  ENOEXEC_GRPC_PORT   collector gRPC port on 127.0.0.1 (default 7469)
  ENOEXEC_HTTP_PORT   collector HTTP port on 127.0.0.1 (default 9469)

The programs are installed in .enoexec/venv (runtime only); `make venv` makes
the separate development environment in .venv for the tests.
EOF
}
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
RUN=$ROOT/.enoexec
VENV=$RUN/venv
BIN=$VENV/bin
GRPC=${ENOEXEC_GRPC_PORT:-7469}
HTTP=${ENOEXEC_HTTP_PORT:-9469}
DOCKER_URL=${DOCKER_HOST:-unix:///var/run/docker.sock}

say() { echo "quickstart: $*"; }
die() { echo "quickstart: $1" >&2; exit "${2:-1}"; }

DEMO=0 STOP=0
for arg in "$@"; do
    case "$arg" in
        --demo) DEMO=1 ;;
        --stop) STOP=1 ;;
        -h|--help) usage; exit 0 ;;
        *) die "unknown option $arg (see --help)" 2 ;;
    esac
done

ours() {  # is the process in pid file $1 alive?
    [ -f "$RUN/$1.pid" ] && kill -0 "$(cat "$RUN/$1.pid")" 2>/dev/null
}

stop() {
    for name in agent collector; do
        if ours "$name"; then
            pid=$(cat "$RUN/$name.pid")
            kill -TERM "$pid"
            for _ in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
            say "stopped $name"
        fi
        rm -f "$RUN/$name.pid"
    done
    # The demo's containers and images ('enoexec-agent demo' makes enoexec-demo/*).
    if [ -x "$BIN/python" ]; then
        "$BIN/python" - "$DOCKER_URL" <<'PY' || true
import sys
import docker
api = docker.APIClient(base_url=sys.argv[1], version="auto", timeout=10)
gone = 0
for image in api.images(name="enoexec-demo/*"):
    for c in api.containers(all=True, filters={"ancestor": image["Id"]}):
        api.remove_container(c["Id"], force=True)
        gone += 1
    api.remove_image(image["Id"], force=True)
    gone += 1
if gone:
    print(f"quickstart: removed the demo's containers and images ({gone})")
PY
    fi
    # A dockerd this script started (not one systemd or the user runs).
    if ours dockerd; then
        pid=$(cat "$RUN/dockerd.pid")
        kill -TERM "$pid"
        for _ in $(seq 1 80); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
        say "stopped the dockerd the quick start had started"
    fi
    rm -f "$RUN/dockerd.pid"
}

if [ "$STOP" = 1 ]; then stop; exit 0; fi
mkdir -p "$RUN"

# 1. What the quick start needs from the system: python3 with venv, and a Docker Engine.
local_docker=1
case "$DOCKER_URL" in unix://*) ;; *) local_docker=0 ;; esac
missing=()
command -v python3 >/dev/null || missing+=(python3)
python3 -c 'import ensurepip, venv' 2>/dev/null || missing+=(python3-venv)
if [ "$local_docker" = 1 ] && ! command -v dockerd >/dev/null; then missing+=(docker.io); fi
if [ "${#missing[@]}" -gt 0 ]; then
    [ "$(id -u)" = 0 ] || die "missing: ${missing[*]}; run as root to install them (or apt-get install ${missing[*]})" 2
    command -v apt-get >/dev/null || die "missing: ${missing[*]}; install them with your package manager" 2
    say "installing ${missing[*]} (apt-get, about a minute)"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

docker_answers() { python3 - "$DOCKER_URL" <<'PY'
import socket, sys
url = sys.argv[1]
if not url.startswith("unix://"):
    sys.exit(0)  # a remote engine: the agent says if it does not answer
s = socket.socket(socket.AF_UNIX)
s.settimeout(2)
try:
    s.connect(url[len("unix://"):]); s.sendall(b"GET /_ping HTTP/1.0\r\n\r\n"); sys.exit(0 if b"OK" in s.recv(4096) else 1)
except OSError:
    sys.exit(1)
PY
}
if ! docker_answers; then
    sock=${DOCKER_URL#unix://}
    if [ "$sock" = /var/run/docker.sock ] && [ -d /run/systemd/system ]; then
        say "starting docker with systemd"; systemctl start docker
    else
        say "starting dockerd on $sock (log in $RUN/dockerd.log)"
        nohup dockerd --host "unix://$sock" >"$RUN/dockerd.log" 2>&1 &
        echo $! >"$RUN/dockerd.pid"  # ours: --stop stops it again
    fi
    for _ in $(seq 1 60); do docker_answers && break; sleep 0.5; done
    docker_answers || die "dockerd did not come up on $DOCKER_URL; see $RUN/dockerd.log"
fi

# 2. enoexec itself, in a runtime virtual environment (no test or lint tools).
stamp=$VENV/.installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
    say "installing enoexec into $VENV (about 30 s)"
    python3 -m venv "$VENV"
    "$BIN/pip" install -q --disable-pip-version-check "$ROOT[collector]" || die "pip install failed (see above)"
    touch "$stamp"
fi

# 3. Collector and agent, in the background. Refuse ports another process holds:
# a health check would otherwise find that process and report it as ours.
# SO_REUSEADDR as the servers set it: connections of a just-stopped collector in
# TIME-WAIT do not make the port look taken; a live listener still does.
port_free() { python3 -c "import socket,sys; s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(('127.0.0.1', int(sys.argv[1])))" "$1" 2>/dev/null; }
if ! ours collector; then
    for port in "$GRPC" "$HTTP"; do
        port_free "$port" || die "port $port on 127.0.0.1 is taken by another process (another clone's quick start? stop it with its 'bash deploy/quickstart.sh --stop', or set ENOEXEC_GRPC_PORT and ENOEXEC_HTTP_PORT)" 2
    done
    say "starting the collector (gRPC 127.0.0.1:$GRPC, HTTP 127.0.0.1:$HTTP)"
    nohup "$BIN/enoexec-collector" serve --insecure --db "$RUN/enoexec.db" --log-format logfmt \
        --grpc-listen "127.0.0.1:$GRPC" --http-listen "127.0.0.1:$HTTP" >"$RUN/collector.log" 2>&1 &
    echo $! >"$RUN/collector.pid"
fi
for _ in $(seq 1 60); do
    ours collector || die "the collector stopped: $(tail -n 1 "$RUN/collector.log")"
    grep -q "collector started" "$RUN/collector.log" 2>/dev/null && break
    sleep 0.5
done
grep -q "collector started" "$RUN/collector.log" || die "the collector did not start; see $RUN/collector.log"
if ! ours agent; then
    say "starting the agent (watching $DOCKER_URL)"
    nohup "$BIN/enoexec-agent" run --insecure --collector "127.0.0.1:$GRPC" --docker-host "$DOCKER_URL" \
        --state-dir "$RUN/agent" --reconcile-interval 10 --log-format logfmt >"$RUN/agent.log" 2>&1 &
    echo $! >"$RUN/agent.pid"
fi
for _ in $(seq 1 60); do
    ours agent || die "the agent stopped: $(tail -n 1 "$RUN/agent.log")"
    grep -q "collector connected" "$RUN/agent.log" 2>/dev/null && break
    sleep 0.5
done
grep -q "collector connected" "$RUN/agent.log" || die "the agent did not connect; see $RUN/agent.log"

say "collector and agent are running (logs: $RUN/collector.log, $RUN/agent.log)"
say "metrics:  http://127.0.0.1:$HTTP/metrics"
say "events:   http://127.0.0.1:$HTTP/api/v1/events"
say "hints:    $BIN/enoexec-collector hints --url 127.0.0.1:$HTTP"
say "stop:     bash deploy/quickstart.sh --stop"

if [ "$DEMO" = 1 ]; then
    "$BIN/enoexec-agent" demo --docker-host "$DOCKER_URL"
    for _ in $(seq 1 40); do
        if "$BIN/python" -c "import urllib.request,sys; sys.exit(0 if b'enoexec_exits_total{' in urllib.request.urlopen('http://127.0.0.1:$HTTP/metrics').read() else 1)"; then
            say "counted:"
            "$BIN/python" -c "import urllib.request; print('\n'.join(l for l in urllib.request.urlopen('http://127.0.0.1:$HTTP/metrics').read().decode().splitlines() if l.startswith('enoexec_exits_total{')))"
            exit 0
        fi
        sleep 0.5
    done
    die "the demo exit was not counted within 20 s; see $RUN/agent.log"
fi
