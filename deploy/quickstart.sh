#!/usr/bin/env bash
# enoexec quick start on one machine: install what is missing, then run a
# collector (SQLite) and an agent watching the local Docker Engine, in the
# background, with their logs and data under ./.enoexec/.
#
#   bash deploy/quickstart.sh          # start (idempotent)
#   bash deploy/quickstart.sh --stop   # stop both
#   bash deploy/quickstart.sh --demo   # start, then run a foreign-architecture image once
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
RUN=$ROOT/.enoexec
GRPC=${ENOEXEC_GRPC_PORT:-7469}
HTTP=${ENOEXEC_HTTP_PORT:-9469}
DOCKER_URL=${DOCKER_HOST:-unix:///var/run/docker.sock}
mkdir -p "$RUN"

say() { echo "quickstart: $*"; }

stop() {
    for name in agent collector; do
        if [ -f "$RUN/$name.pid" ] && kill -0 "$(cat "$RUN/$name.pid")" 2>/dev/null; then
            kill -TERM "$(cat "$RUN/$name.pid")"
            say "stopped $name"
        fi
        rm -f "$RUN/$name.pid"
    done
}

case "${1:-}" in
    --stop) stop; exit 0 ;;
    --demo|"") ;;
    -h|--help) sed -n '2,9p' "$0"; exit 0 ;;
    *) echo "quickstart: unknown option $1 (see --help)" >&2; exit 2 ;;
esac

# 1. Docker Engine and Python.
if ! command -v dockerd >/dev/null || ! command -v python3 >/dev/null; then
    [ "$(id -u)" = 0 ] || { echo "quickstart: run as root to install docker.io (or install it yourself)" >&2; exit 2; }
    say "installing docker.io and python3-venv"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io python3-venv >/dev/null
fi
docker_answers() { python3 - "$DOCKER_URL" <<'PY'
import socket, sys
url = sys.argv[1]
if not url.startswith("unix://"):
    sys.exit(0)  # a remote engine: let the agent find out
s = socket.socket(socket.AF_UNIX)
s.settimeout(2)
try:
    s.connect(url[len("unix://"):]); s.sendall(b"GET /_ping HTTP/1.0\r\n\r\n"); sys.exit(0 if b"OK" in s.recv(4096) else 1)
except OSError:
    sys.exit(1)
PY
}
if ! docker_answers; then
    if [ -d /run/systemd/system ]; then
        say "starting docker with systemd"; systemctl start docker
    else
        say "starting dockerd (no systemd here); log in $RUN/dockerd.log"
        nohup dockerd >"$RUN/dockerd.log" 2>&1 &
    fi
    for _ in $(seq 1 60); do docker_answers && break; sleep 0.5; done
    docker_answers || { echo "quickstart: dockerd did not come up; see $RUN/dockerd.log" >&2; exit 1; }
fi

# 2. enoexec itself, in a virtual environment.
make -s venv
BIN=$ROOT/.venv/bin

# 3. Collector and agent, in the background.
if ! { [ -f "$RUN/collector.pid" ] && kill -0 "$(cat "$RUN/collector.pid")" 2>/dev/null; }; then
    nohup "$BIN/enoexec-collector" serve --insecure --db "$RUN/enoexec.db" \
        --grpc-listen "127.0.0.1:$GRPC" --http-listen "127.0.0.1:$HTTP" >"$RUN/collector.log" 2>&1 &
    echo $! >"$RUN/collector.pid"
fi
if ! { [ -f "$RUN/agent.pid" ] && kill -0 "$(cat "$RUN/agent.pid")" 2>/dev/null; }; then
    nohup "$BIN/enoexec-agent" run --insecure --collector "127.0.0.1:$GRPC" --docker-host "$DOCKER_URL" \
        --state-dir "$RUN/agent" --reconcile-interval 10 >"$RUN/agent.log" 2>&1 &
    echo $! >"$RUN/agent.pid"
fi
for _ in $(seq 1 60); do
    python3 -c "import urllib.request,sys; urllib.request.urlopen('http://127.0.0.1:$HTTP/healthz', timeout=1)" 2>/dev/null && break
    sleep 0.5
done
for _ in $(seq 1 60); do grep -q "collector connected" "$RUN/agent.log" 2>/dev/null && break; sleep 0.5; done
grep -q "collector connected" "$RUN/agent.log" || { echo "quickstart: the agent did not connect; see $RUN/agent.log" >&2; exit 1; }

say "collector and agent are running (logs: $RUN/collector.log, $RUN/agent.log)"
say "metrics:  http://127.0.0.1:$HTTP/metrics"
say "events:   http://127.0.0.1:$HTTP/api/v1/events"
say "hints:    $BIN/enoexec-collector hints --url http://127.0.0.1:$HTTP"
say "stop:     bash deploy/quickstart.sh --stop"

if [ "${1:-}" = "--demo" ]; then
    "$BIN/enoexec-agent" demo --docker-host "$DOCKER_URL"
    for _ in $(seq 1 40); do
        if python3 -c "import urllib.request,sys; sys.exit(0 if b'enoexec_exits_total{' in urllib.request.urlopen('http://127.0.0.1:$HTTP/metrics').read() else 1)"; then
            say "counted:"
            python3 -c "import urllib.request; print('\n'.join(l for l in urllib.request.urlopen('http://127.0.0.1:$HTTP/metrics').read().decode().splitlines() if l.startswith('enoexec_exits_total{')))"
            exit 0
        fi
        sleep 0.5
    done
    echo "quickstart: the demo exit was not counted within 20 s; see $RUN/agent.log" >&2
    exit 1
fi
