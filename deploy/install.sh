#!/usr/bin/env bash
# Install the enoexec agent and/or collector on this host from this checkout.
# Safe to run again: it upgrades the package and keeps existing configuration.
set -euo pipefail

PROG=$(basename "$0")
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DEPLOY="$REPO/deploy"

BIN_DIR=/usr/local/bin
CONF_DIR=/etc/enoexec
UNIT_DIR=/etc/systemd/system

PREFIX=/opt/enoexec
PYTHON=python3
AGENT=0
COLLECTOR=0
COLLECTOR_ADDRESS=""
DRY_RUN=0

usage() {
    cat <<USAGE
Usage: $PROG [--agent] [--collector] [--collector-address HOST:PORT]
             [--prefix DIR] [--python PATH] [--dry-run]

Install enoexec from $REPO on this host.

  --agent                       install the agent (service enoexec-agent, user enoexec)
  --collector                   install the collector (service enoexec-collector,
                                user enoexec-collector)
  --collector-address HOST:PORT collector the agent reports to (written into a new
                                $CONF_DIR/agent.toml; default with --collector:
                                127.0.0.1:7469)
  --prefix DIR                  where the virtualenv goes (default $PREFIX)
  --python PATH                 Python 3.11+ interpreter for the virtualenv (default python3)
  --dry-run                     print what would be done, change nothing
  -h, --help                    show this help

Steps: create a virtualenv in PREFIX/venv and pip install the package into it;
link enoexec-agent and enoexec-collector into $BIN_DIR; create the service
users; copy the example config to $CONF_DIR if absent; install the systemd
units; and, when systemd is running, enable and start them.

The agent's user joins the docker group (through the unit's
SupplementaryGroups=docker). Access to the Docker socket is root-equivalent.

Examples:
  sudo deploy/install.sh --collector
  sudo deploy/install.sh --agent --collector-address collector.example:7469
USAGE
}

say() { echo "$PROG: $*"; }
warn() { echo "$PROG: warning: $*" >&2; }
die() { echo "$PROG: $*" >&2; exit 2; }

# run CMD...: run a command that changes the system, or print it with --dry-run.
run() {
    if [ "$DRY_RUN" = 1 ]; then
        printf '+'
        printf ' %q' "$@"
        printf '\n'
    else
        "$@"
    fi
}

parse_args() {
    while [ $# -gt 0 ]; do
        case $1 in
            --agent) AGENT=1 ;;
            --collector) COLLECTOR=1 ;;
            --collector-address)
                [ $# -ge 2 ] || die "--collector-address needs HOST:PORT"
                COLLECTOR_ADDRESS=$2; shift ;;
            --collector-address=*) COLLECTOR_ADDRESS=${1#*=} ;;
            --prefix)
                [ $# -ge 2 ] || die "--prefix needs a directory"
                PREFIX=$2; shift ;;
            --prefix=*) PREFIX=${1#*=} ;;
            --python)
                [ $# -ge 2 ] || die "--python needs a path"
                PYTHON=$2; shift ;;
            --python=*) PYTHON=${1#*=} ;;
            --dry-run) DRY_RUN=1 ;;
            -h|--help) usage; exit 0 ;;
            *) echo "$PROG: unknown option '$1'" >&2; usage >&2; exit 2 ;;
        esac
        shift
    done
    [ "$AGENT" = 1 ] || [ "$COLLECTOR" = 1 ] \
        || die "nothing to install: pass --agent, --collector or both (see --help)"
    if [ -n "$COLLECTOR_ADDRESS" ]; then
        [[ $COLLECTOR_ADDRESS =~ ^([A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\]):[0-9]{1,5}$ ]] \
            || die "--collector-address '$COLLECTOR_ADDRESS' is not HOST:PORT (e.g. collector.example:7469)"
        [ "$AGENT" = 1 ] || warn "--collector-address is only used with --agent"
    elif [ "$AGENT" = 1 ] && [ "$COLLECTOR" = 1 ]; then
        COLLECTOR_ADDRESS=127.0.0.1:7469
    fi
    case $PREFIX in
        /*) ;;
        *) die "--prefix must be an absolute path, not '$PREFIX'" ;;
    esac
}

preflight() {
    [ -f "$REPO/pyproject.toml" ] || die "$REPO/pyproject.toml not found: run $PROG from an enoexec checkout"
    if [ "$DRY_RUN" = 0 ] && [ "$(id -u)" != 0 ]; then
        die "must run as root (try: sudo $0 $*)"
    fi
    command -v "$PYTHON" >/dev/null || die "$PYTHON not found: install Python 3.11 or later, or pass --python PATH"
    "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
        || die "$PYTHON is older than 3.11: pass --python PATH to a newer interpreter"
    "$PYTHON" -c 'import venv, ensurepip' 2>/dev/null \
        || die "$PYTHON cannot create virtualenvs: install the venv module (apt-get install python3-venv)"
}

install_package() {
    local venv="$PREFIX/venv"
    if [ -x "$venv/bin/python" ]; then
        say "reusing virtualenv $venv"
    else
        say "creating virtualenv $venv"
        run install -d -m 0755 "$PREFIX"
        run "$PYTHON" -m venv "$venv"
    fi
    say "installing enoexec from $REPO"
    run "$venv/bin/python" -m pip install --quiet --upgrade pip
    local spec="$REPO"  # the agent alone needs no extra; the collector brings its libraries
    [ "$COLLECTOR" = 1 ] && spec="$REPO[postgres]"
    run "$venv/bin/python" -m pip install --quiet --upgrade "$spec"
    local script
    for script in enoexec-agent enoexec-collector; do
        run ln -sfn "$venv/bin/$script" "$BIN_DIR/$script"
    done
    say "linked enoexec-agent and enoexec-collector into $BIN_DIR"
}

nologin_shell() {
    local s
    for s in /usr/sbin/nologin /sbin/nologin /bin/false; do
        [ -x "$s" ] && { echo "$s"; return; }
    done
    echo /bin/false
}

ensure_user() {
    local user=$1 home=$2
    if id -u "$user" >/dev/null 2>&1; then
        say "user $user exists"
    else
        say "creating system user $user"
        run useradd --system --user-group --home-dir "$home" --no-create-home \
            --shell "$(nologin_shell)" --comment "enoexec" "$user"
    fi
    run install -d -m 0750 -o "$user" -g "$user" "$home"
}

# install_config NAME GROUP: copy deploy/config/NAME.toml to CONF_DIR unless present.
install_config() {
    local name=$1 group=$2
    local dest="$CONF_DIR/$name.toml"
    run install -d -m 0755 "$CONF_DIR" "$CONF_DIR/tls"
    if [ -e "$dest" ]; then
        say "keeping existing $dest"
        return 1
    fi
    say "writing $dest (edit it, then restart enoexec-$name)"
    run install -m 0640 -o root -g "$group" "$DEPLOY/config/$name.toml" "$dest"
    return 0
}

install_agent() {
    ensure_user enoexec /var/lib/enoexec
    getent group docker >/dev/null \
        || warn "group docker does not exist: install Docker Engine before starting enoexec-agent"
    if install_config agent enoexec; then
        if [ -n "$COLLECTOR_ADDRESS" ]; then
            run sed -i "s|^collector = .*|collector = \"$COLLECTOR_ADDRESS\"|" "$CONF_DIR/agent.toml"
        else
            warn "no --collector-address: set 'collector' in $CONF_DIR/agent.toml"
        fi
    elif [ -n "$COLLECTOR_ADDRESS" ] && ! grep -q "^collector = \"$COLLECTOR_ADDRESS\"" "$CONF_DIR/agent.toml"; then
        warn "$CONF_DIR/agent.toml names another collector; edit it to use $COLLECTOR_ADDRESS"
    fi
    run install -d -m 0755 "$UNIT_DIR"
    run install -m 0644 "$DEPLOY/systemd/enoexec-agent.service" "$UNIT_DIR/enoexec-agent.service"
}

install_collector() {
    ensure_user enoexec-collector /var/lib/enoexec-collector
    install_config collector enoexec-collector || true
    run install -d -m 0755 "$UNIT_DIR"
    run install -m 0644 "$DEPLOY/systemd/enoexec-collector.service" "$UNIT_DIR/enoexec-collector.service"
}

systemd_running() {
    # The test sd_booted(3) uses: systemd is PID 1 when this directory exists.
    [ -d /run/systemd/system ]
}

start_services() {
    local units=("$@") unit
    if ! systemd_running; then
        say "systemd is not running as PID 1, so nothing was started. Start by hand with:"
        for unit in "${units[@]}"; do
            case $unit in
                enoexec-agent) echo "  runuser -u enoexec -g enoexec -G docker -- $BIN_DIR/enoexec-agent run --config $CONF_DIR/agent.toml" ;;
                enoexec-collector) echo "  runuser -u enoexec-collector -- $BIN_DIR/enoexec-collector serve --config $CONF_DIR/collector.toml" ;;
            esac
        done
        return
    fi
    run systemctl daemon-reload
    for unit in "${units[@]}"; do
        if systemctl is-active --quiet "$unit"; then
            say "restarting $unit to load the new version"
            run systemctl enable "$unit"
            run systemctl restart "$unit"
        else
            say "enabling and starting $unit"
            run systemctl enable --now "$unit"
        fi
    done
    say "check with: systemctl status ${units[*]}"
}

main() {
    parse_args "$@"
    preflight "$@"
    [ "$DRY_RUN" = 0 ] || say "dry run: printing commands instead of running them"
    install_package
    local units=()
    if [ "$COLLECTOR" = 1 ]; then
        install_collector
        units+=(enoexec-collector)
    fi
    if [ "$AGENT" = 1 ]; then
        install_agent
        units+=(enoexec-agent)
    fi
    start_services "${units[@]}"
    say "done. TLS: put ca.crt and this host's certificate and key in $CONF_DIR/tls/ as named by tls_* in $CONF_DIR/*.toml"
    say "(deploy/tls/make-certs.sh makes them; keys root:enoexec or root:enoexec-collector, mode 0640),"
    say "or set insecure = true and remove the tls_* keys on a trusted network"
}

main "$@"
