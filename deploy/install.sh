#!/usr/bin/env bash
# Install the enoexec agent and/or collector on this host from this checkout.
# Safe to run again: it upgrades the package and keeps existing configuration.
# On failure it says which step and package failed, removes what this run
# made, and exits non-zero (2: usage or a refused interpreter; 1: a failed step).
set -euo pipefail

PROG=$(basename "$0")
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DEPLOY="$REPO/deploy"

BIN_DIR=/usr/local/bin
CONF_DIR=/etc/enoexec
UNIT_DIR=/etc/systemd/system
DOC_DIR=/usr/local/share/doc/enoexec
TLS_DIR=$CONF_DIR/tls

PREFIX=/opt/enoexec
PYTHON=python3
AGENT=0
COLLECTOR=0
AGENT_NEEDS_TLS=0
COLLECTOR_ADDRESS=""
DRY_RUN=0
UNINSTALL=0
PURGE=0
INSECURE=0
WHEELS=""    # --wheels DIR: install from these wheels only, no package index
STAGED=""    # the copy of the checkout pip builds from, removed at exit
CREATED=()   # what this run made, undone in reverse if a later step fails

usage() {
    cat <<USAGE
Usage: $PROG [--agent] [--collector] [--collector-address HOST:PORT]
             [--prefix DIR] [--python PATH] [--wheels DIR] [--insecure] [--dry-run]
       $PROG --uninstall [--purge] [--prefix DIR] [--dry-run]

Install enoexec from $REPO on this host.

  --agent                       install the agent (service enoexec-agent, user enoexec)
  --collector                   install the collector (service enoexec-collector,
                                user enoexec-collector)
  --collector-address HOST:PORT collector the agent reports to (written into a new
                                $CONF_DIR/agent.toml; default with --collector:
                                127.0.0.1:7469)
  --prefix DIR                  where the virtualenv goes (default $PREFIX)
  --python PATH                 Python 3.11+ interpreter for the virtualenv (default python3);
                                the service users must be able to run it (not a pyenv or
                                conda interpreter under a private home directory)
  --wheels DIR                  install from the wheels in DIR only, without a package
                                index (a host with no network access); fill DIR on a
                                connected machine with deploy/fetch-wheels.sh DIR
  --insecure                    write insecure = true into new config files (plaintext gRPC,
                                for a trusted network) instead of using TLS
  --uninstall                   stop and remove the services, units, links, virtualenv and
                                docs; keep $CONF_DIR, /var/lib/enoexec* and the users
  --purge                       with --uninstall: remove those too
  --dry-run                     print what would be done, change nothing
  -h, --help                    show this help

Steps: create a virtualenv in PREFIX/venv and pip install the package into it
(the agent alone; the collector with its libraries and PostgreSQL's driver);
link enoexec-agent and enoexec-collector into $BIN_DIR; create the service
users; copy the example config to $CONF_DIR if absent; install the systemd
units and the README under $DOC_DIR; and, when systemd is running, enable and
start them.

TLS: with --collector, when $TLS_DIR holds no CA, the installer makes a local
CA there (deploy/tls/make-certs.sh; ca.key stays on this host, mode 0600) and
the collector's certificate for this host name, 127.0.0.1 and ::1. With
--agent on a host that has that local CA (a single-host install), it also
makes the agent's certificate and sets host_id. An agent reporting to another
host needs ca.crt, agent.crt and agent.key from the collector's CA copied
into $TLS_DIR (see deploy/README.md), or --insecure.

The agent's user joins the docker group (through the unit's
SupplementaryGroups=docker). Access to the Docker socket is root-equivalent.

Examples:
  sudo deploy/install.sh --collector
  sudo deploy/install.sh --agent --collector-address collector.example:7469
  sudo deploy/install.sh --agent --collector-address collector.example:7469 --wheels /media/wheels
USAGE
}

say() { echo "$PROG: $*"; }
warn() { echo "$PROG: warning: $*" >&2; }
die() { echo "$PROG: $*" >&2; exit 2; }
# fail MESSAGE: a step failed after changes began: undo them (see on_exit), exit 1.
fail() { echo "$PROG: error: $*" >&2; exit 1; }

# made KIND PATH: remember something this run created (KIND: path or user).
made() { CREATED+=("$1:$2"); }

# On a failed exit, remove what this run made, newest first, and say so.
on_exit() {
    local rc=$? i kind what
    [ -z "$STAGED" ] || rm -rf -- "$STAGED"
    [ "$rc" = 0 ] || [ "${#CREATED[@]}" = 0 ] || [ "$DRY_RUN" = 1 ] && return
    for ((i = ${#CREATED[@]} - 1; i >= 0; i--)); do
        kind=${CREATED[i]%%:*} what=${CREATED[i]#*:}
        case $kind in
            path) rm -rf -- "$what" && echo "$PROG: removed $what (made by this run)" >&2 ;;
            user) userdel "$what" 2>/dev/null && echo "$PROG: removed user $what (made by this run)" >&2 ;;
        esac
    done
    echo "$PROG: nothing was left half-installed; fix the error above and run $PROG again" >&2
}

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
            --wheels)
                [ $# -ge 2 ] || die "--wheels needs a directory"
                WHEELS=$2; shift ;;
            --wheels=*) WHEELS=${1#*=} ;;
            --insecure) INSECURE=1 ;;
            --uninstall) UNINSTALL=1 ;;
            --purge) PURGE=1 ;;
            --dry-run) DRY_RUN=1 ;;
            -h|--help) usage; exit 0 ;;
            *) echo "$PROG: unknown option '$1'" >&2; usage >&2; exit 2 ;;
        esac
        shift
    done
    if [ "$UNINSTALL" = 1 ]; then
        [ "$AGENT" = 0 ] && [ "$COLLECTOR" = 0 ] || die "--uninstall removes both programs: drop --agent/--collector"
        [ -z "$WHEELS" ] || die "--wheels goes with an install, not --uninstall"
    else
        [ "$PURGE" = 0 ] || die "--purge goes with --uninstall"
        [ "$AGENT" = 1 ] || [ "$COLLECTOR" = 1 ] \
            || die "nothing to install: pass --agent, --collector or both (see --help)"
    fi
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
    check_interpreter_shared
    if [ -n "$WHEELS" ]; then
        [ -d "$WHEELS" ] || die "--wheels $WHEELS is not a directory: fill one on a connected machine with deploy/fetch-wheels.sh DIR and copy it here"
        WHEELS=$(cd "$WHEELS" && pwd)
        compgen -G "$WHEELS/*.whl" >/dev/null \
            || die "--wheels $WHEELS holds no wheels: fill it on a connected machine with deploy/fetch-wheels.sh $WHEELS"
    fi
}

# The virtualenv links to the base interpreter, so the services' users must be
# able to run it: a pyenv or conda Python under root's (or anyone's) private
# home cannot be.
check_interpreter_shared() {
    local real
    real=$("$PYTHON" -c 'import os, sys; print(os.path.realpath(sys.executable))')
    if command -v runuser >/dev/null && id -u nobody >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
        (cd / && runuser -u nobody -- "$real" -c '' >/dev/null 2>&1) && return
    else
        local d=$real
        [ -r "$d" ] && [ "$(( 0$(stat -L -c %a "$d") & 05 ))" = 5 ] || d=""
        while [ -n "$d" ] && [ "$d" != / ]; do
            d=$(dirname "$d")
            [ "$(( 0$(stat -L -c %a "$d") & 01 ))" = 1 ] || { d=""; break; }
        done
        [ -n "$d" ] && return
    fi
    die "$PYTHON ($real) cannot be run by the service users (a private home, e.g. pyenv or conda?): pass --python with a system-wide interpreter such as /usr/bin/python3"
}

install_package() {
    local venv="$PREFIX/venv"
    if [ -x "$venv/bin/python" ]; then
        say "reusing virtualenv $venv"
    else
        say "creating virtualenv $venv"
        [ -e "$PREFIX" ] || made path "$PREFIX"
        made path "$venv"
        run install -d -m 0755 "$PREFIX"
        run "$PYTHON" -m venv "$venv" || fail "could not create the virtualenv $venv with $PYTHON"
    fi
    local src="$REPO"
    if [ "$DRY_RUN" = 0 ]; then
        STAGED=$(stage_source) || fail "could not copy $REPO to a temporary directory to build from"
        src=$STAGED
    fi
    local spec="$src"  # the agent alone needs no extra; the collector brings its libraries
    [ "$COLLECTOR" = 1 ] && spec="$src[postgres]"
    say "installing $(shown "$spec") into $venv"
    pip_install "$venv" "$spec"
    local script
    for script in enoexec-agent enoexec-collector; do
        [ -e "$BIN_DIR/$script" ] || [ -L "$BIN_DIR/$script" ] || made path "$BIN_DIR/$script"
        run ln -sfn "$venv/bin/$script" "$BIN_DIR/$script"
    done
    say "linked enoexec-agent and enoexec-collector into $BIN_DIR"
    [ -e "$DOC_DIR" ] || made path "$DOC_DIR"
    run install -d -m 0755 "$DOC_DIR"
    run install -m 0644 "$REPO/README.md" "$DOC_DIR/README.md"
    run install -m 0644 "$DEPLOY/README.md" "$DOC_DIR/deploy.md"
}

# stage_source: a copy of the checkout for pip to build from. pip builds in the
# source tree, and setuptools packs whatever an earlier build left in its build/
# directory: from the checkout itself, a module deleted since would come back.
stage_source() {
    local dest
    dest=$(mktemp -d) || return 1
    tar -C "$REPO" --exclude=./.git --exclude=./.venv --exclude=./build --exclude='*.egg-info' --exclude=./.enoexec \
        --exclude=./wheelhouse --exclude=__pycache__ --exclude=.mypy_cache --exclude=.ruff_cache --exclude=.pytest_cache \
        -cf - . | tar -C "$dest" -xf - || { rm -rf -- "$dest"; return 1; }
    echo "$dest"
}

# shown SPEC: SPEC as the user knows it (the checkout, not its staged copy).
shown() {
    if [ -n "$STAGED" ]; then echo "${1/#"$STAGED"/$REPO}"; else echo "$1"; fi
}

# pip_install VENV SPEC: pip's own output stays visible; on failure, the lines
# naming the package and the reason are repeated, and the run fails naming the
# cause (an index it could not reach, a wheel missing from --wheels DIR).
# --prefer-binary: take a wheel over a newer source release that would need a
# compiler (every dependency has wheels for armv7l, aarch64 and x86_64).
pip_install() {
    local venv=$1 spec=$2 log rc=0 cause
    local args=(--prefer-binary --upgrade)
    [ -z "$WHEELS" ] || args+=(--no-index --find-links "$WHEELS")
    if [ "$DRY_RUN" = 1 ]; then
        run "$venv/bin/python" -m pip install "${args[@]}" "$spec"
        return
    fi
    log=$(mktemp)
    "$venv/bin/python" -m pip install "${args[@]}" --disable-pip-version-check "$spec" 2>&1 \
        | tee "$log" || rc=$?
    if [ "$rc" != 0 ]; then
        echo "$PROG: pip could not install $(shown "$spec"); the reason, as pip gave it:" >&2
        grep -E '(ERROR|error):|ResolutionImpossible|Failed (building|to build)|requires a different Python' "$log" \
            | grep -v 'subprocess-exited-with-error' | sed -E 's/^[[:space:]]+//' | awk '!seen[$0]++' \
            | sed "s/^/$PROG:   /" >&2 || tail -n 5 "$log" | sed "s/^/$PROG:   /" >&2
        cause=$(pip_failure_cause "$log" "$venv/bin/python")
        rm -f "$log"
        fail "${cause:-installing $(shown "$spec") failed (pip exit status $rc)}"
    fi
    rm -f "$log"
}

# pip_failure_cause LOG PYTHON: the cause of a failed pip install when pip's last
# words hide it (empty otherwise): an index it could not reach (its retry
# warnings say why, its final error only "No matching distribution"), or with
# --wheels, a package DIR has no wheel of for this host.
pip_failure_cause() {
    local log=$1 python=$2 err index missing version machine
    err=$(grep -oE "Temporary failure in name resolution|Name or service not known|No address associated with hostname|Network is unreachable|No route to host|Connection refused|Connection timed out|Read timed out|ProxyError|Cannot connect to proxy|CERTIFICATE_VERIFY_FAILED|SSLError" "$log" | head -n 1 || true)
    if [ -n "$err" ]; then
        index=$(sed -n 's/^ *Looking in indexes: //p' "$log" | head -n 1)
        index=${index:-https://pypi.org/simple}
        case $err in
            *"name resolution"*|*"not known"*|*"No address"*) err="name resolution failed ($err): this host has no DNS or no network" ;;
            *roxy*) err="the proxy failed ($err): check HTTPS_PROXY or pip's proxy setting" ;;
            *SSL*|*CERTIFICATE*) err="TLS failed ($err): a proxy that intercepts HTTPS needs its CA in pip's cert setting" ;;
            *) err="$err" ;;
        esac
        echo "pip could not reach the package index $index: $err; without network, fill a wheel directory on a connected machine (deploy/fetch-wheels.sh DIR), copy it here and run $PROG --wheels DIR"
        return
    fi
    [ -n "$WHEELS" ] || return 0
    missing=$(sed -n 's/.*No matching distribution found for \([^ ]*\).*/\1/p' "$log" | head -n 1)
    [ -n "$missing" ] || return 0
    read -r version machine < <("$python" -c 'import platform, sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}", platform.machine())' 2>/dev/null) \
        || { version=X.Y machine=ARCH; }
    echo "$WHEELS has no wheel of $missing for this host (CPython $version on $machine): on a connected machine run deploy/fetch-wheels.sh DIR --arch $machine --python-version $version$([ "$COLLECTOR" = 0 ] || echo ' --collector'), then copy DIR here again"
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
            --shell "$(nologin_shell)" --comment "enoexec" "$user" || fail "could not create user $user"
        made user "$user"
    fi
    [ -e "$home" ] || made path "$home"
    run install -d -m 0750 -o "$user" -g "$user" "$home"
}

# install_config NAME GROUP: copy deploy/config/NAME.toml to CONF_DIR unless present.
install_config() {
    local name=$1 group=$2
    local dest="$CONF_DIR/$name.toml"
    [ -e "$CONF_DIR" ] || made path "$CONF_DIR"
    run install -d -m 0755 "$CONF_DIR" "$TLS_DIR"
    if [ -e "$dest" ]; then
        say "keeping existing $dest"
        return 1
    fi
    say "writing $dest (edit it, then restart enoexec-$name)"
    made path "$dest"
    run install -m 0640 -o root -g "$group" "$DEPLOY/config/$name.toml" "$dest"
    if [ "$INSECURE" = 1 ]; then
        run sed -i 's/^insecure = false/insecure = true/' "$dest"
    fi
    return 0
}

# tls_file CONFIG KEY: the path the config names for KEY (empty when unset).
tls_file() {
    sed -n "s/^$2 = \"\\(.*\\)\"$/\\1/p" "$1" 2>/dev/null | head -n 1
}

# tls_missing CONFIG: true when the config wants TLS and names a file that is absent.
tls_missing() {
    local conf=$1 key f
    grep -q '^insecure = true' "$conf" 2>/dev/null && return 1
    for key in tls_ca tls_cert tls_key; do
        f=$(tls_file "$conf" "$key")
        [ -n "$f" ] && [ ! -e "$f" ] && return 0
    done
    return 1
}

# local_ca: make this host's CA in TLS_DIR unless one exists (the collector's host).
local_ca() {
    [ -f "$TLS_DIR/ca.crt" ] && return
    [ ! -e "$TLS_DIR/ca.key" ] || fail "$TLS_DIR/ca.key exists without ca.crt: restore ca.crt or move ca.key away"
    say "making a local CA in $TLS_DIR (ca.key stays here, mode 0600)"
    made path "$TLS_DIR/ca.key"; made path "$TLS_DIR/ca.crt"
    run "$DEPLOY/tls/make-certs.sh" ca "$TLS_DIR" || fail "deploy/tls/make-certs.sh could not make a CA in $TLS_DIR"
}

# issue ROLE NAME GROUP [IP...]: ROLE-NAME.{crt,key} from the local CA, linked as ROLE.{crt,key}.
issue() {
    local role=$1 name=$2 group=$3; shift 3
    [ -f "$TLS_DIR/ca.key" ] || return 1
    if [ -e "$TLS_DIR/$role-$name.crt" ] || [ -e "$TLS_DIR/$role-$name.key" ]; then
        say "using the existing $TLS_DIR/$role-$name.{crt,key}"
    else
        say "making the $role certificate for $name from the local CA"
        made path "$TLS_DIR/$role-$name.key"; made path "$TLS_DIR/$role-$name.crt"
        run "$DEPLOY/tls/make-certs.sh" "$role" "$TLS_DIR" "$name" "$@" || fail "deploy/tls/make-certs.sh could not make the $role certificate"
    fi
    run chgrp "$group" "$TLS_DIR/$role-$name.key"
    run chmod 0640 "$TLS_DIR/$role-$name.key"
    run ln -sfn "$role-$name.crt" "$TLS_DIR/$role.crt"
    run ln -sfn "$role-$name.key" "$TLS_DIR/$role.key"
}

# short_host: this host's name as a certificate name (make-certs.sh's rules).
short_host() {
    local h
    h=$(hostname -s 2>/dev/null || hostname)
    [[ $h =~ ^[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?$ ]] || h=localhost
    echo "$h"
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
    if [ "$DRY_RUN" = 0 ] && tls_missing "$CONF_DIR/agent.toml"; then
        local host
        host=$(short_host)
        if issue agent "$host" enoexec; then
            run sed -i "s|^host_id = .*|host_id = \"$host\"|" "$CONF_DIR/agent.toml"
        else
            AGENT_NEEDS_TLS=1
        fi
    fi
    run install -d -m 0755 "$UNIT_DIR"
    [ -e "$UNIT_DIR/enoexec-agent.service" ] || made path "$UNIT_DIR/enoexec-agent.service"
    run install -m 0644 "$DEPLOY/systemd/enoexec-agent.service" "$UNIT_DIR/enoexec-agent.service"
}

install_collector() {
    ensure_user enoexec-collector /var/lib/enoexec-collector
    install_config collector enoexec-collector || true
    if [ "$DRY_RUN" = 0 ] && tls_missing "$CONF_DIR/collector.toml"; then
        local_ca
        issue collector "$(short_host)" enoexec-collector 127.0.0.1 ::1
    fi
    run install -d -m 0755 "$UNIT_DIR"
    [ -e "$UNIT_DIR/enoexec-collector.service" ] || made path "$UNIT_DIR/enoexec-collector.service"
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
        if [ "$unit" = enoexec-agent ] && [ "$AGENT_NEEDS_TLS" = 1 ]; then
            run systemctl enable enoexec-agent
            say "enoexec-agent is enabled but not started: it needs its TLS files (below)"
            continue
        fi
        if systemctl is-active --quiet "$unit"; then
            say "restarting $unit to load the new version"
            run systemctl enable "$unit"
            run systemctl restart "$unit" || fail "$unit did not restart: see journalctl -u $unit"
        else
            say "enabling and starting $unit"
            run systemctl enable --now "$unit" || fail "$unit did not start: see journalctl -u $unit"
        fi
    done
    say "check with: systemctl status ${units[*]}"
}

uninstall() {
    local unit script
    if systemd_running; then
        for unit in enoexec-agent enoexec-collector; do
            if [ -e "$UNIT_DIR/$unit.service" ]; then
                say "stopping and disabling $unit"
                run systemctl disable --now "$unit" || warn "could not stop $unit"
            fi
        done
    fi
    for unit in enoexec-agent enoexec-collector; do
        [ -e "$UNIT_DIR/$unit.service" ] && run rm -f "$UNIT_DIR/$unit.service"
    done
    systemd_running && run systemctl daemon-reload
    for script in enoexec-agent enoexec-collector; do
        if [ -L "$BIN_DIR/$script" ]; then run rm -f "$BIN_DIR/$script"; fi
    done
    [ -e "$PREFIX/venv" ] && { say "removing $PREFIX/venv"; run rm -rf "$PREFIX/venv"; }
    [ -d "$PREFIX" ] && run rmdir --ignore-fail-on-non-empty "$PREFIX"
    [ -e "$DOC_DIR" ] && run rm -rf "$DOC_DIR"
    if [ "$PURGE" = 1 ]; then
        say "purging $CONF_DIR, the state directories and the users"
        run rm -rf "$CONF_DIR" /var/lib/enoexec /var/lib/enoexec-collector \
            /etc/default/enoexec-agent /etc/default/enoexec-collector
        local user
        for user in enoexec enoexec-collector; do
            if id -u "$user" >/dev/null 2>&1; then run userdel "$user"; fi
        done
    else
        say "kept $CONF_DIR (config, TLS files), /var/lib/enoexec* (spool, database) and the users: --purge removes them"
    fi
    say "uninstalled"
}

main() {
    parse_args "$@"
    if [ "$UNINSTALL" = 1 ]; then
        if [ "$DRY_RUN" = 0 ] && [ "$(id -u)" != 0 ]; then die "must run as root (try: sudo $0 $*)"; fi
        uninstall
        return
    fi
    preflight "$@"
    [ "$DRY_RUN" = 0 ] || say "dry run: printing commands instead of running them"
    trap on_exit EXIT
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
    CREATED=()  # installed: from here on a failure (starting a unit) leaves the install in place
    start_services "${units[@]}"
    if [ "$AGENT_NEEDS_TLS" = 1 ]; then
        local host
        host=$(short_host)
        say "the agent needs ca.crt, agent.crt and agent.key in $TLS_DIR, made by the collector's CA."
        say "  The CA is where it was made: $PROG --collector keeps it in $TLS_DIR on the collector's host"
        say "  (ca.crt and ca.key); deploy/tls/make-certs.sh ca DIR keeps it in DIR. There, from the checkout, run:"
        say "    deploy/tls/make-certs.sh agent $TLS_DIR $host"
        say "  (DIR instead of $TLS_DIR for a CA of your own), copy ca.crt, agent-$host.crt and agent-$host.key from"
        say "  that directory into $TLS_DIR here as ca.crt, agent.crt and agent.key (root:enoexec, mode 0640),"
        say "  set host_id = \"$host\" in $CONF_DIR/agent.toml and run: systemctl start enoexec-agent"
        say "  (or, on a trusted network: insecure = true in $CONF_DIR/agent.toml)"
    fi
    say "done"
}

# Sourced (the tests call its functions), it defines them and runs nothing.
if [ "${BASH_SOURCE[0]}" = "$0" ]; then
    main "$@"
fi
