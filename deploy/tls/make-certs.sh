#!/usr/bin/env bash
# Make a small private CA and the certificates enoexec needs for TLS:
# one server certificate per collector, one client certificate per agent.
# ECDSA P-256 keys, SHA-256 signatures. Requires openssl 1.1.1 or later.
set -euo pipefail

PROG=$(basename "$0")
DAYS=${DAYS:-825}
CA_DAYS=${CA_DAYS:-3650}
INSTALLED_CA=/etc/enoexec/tls  # where deploy/install.sh --collector makes its CA

usage() {
    cat <<USAGE
Usage:
  $PROG ca DIR                          make DIR/ca.key and DIR/ca.crt
  $PROG collector DIR HOSTNAME [IP...]  make DIR/collector-HOSTNAME.{key,crt}
  $PROG agent DIR HOST_ID               make DIR/agent-HOST_ID.{key,crt}
  $PROG --help

DIR holds the CA (ca.crt, ca.key) and receives the certificates: the one
given to '$PROG ca', or $INSTALLED_CA on the host where
'install.sh --collector' made a local CA.

The collector certificate is for TLS servers, with HOSTNAME as CN and DNS
subject alternative name and each IP as an IP SAN: agents must connect to one
of those names. The agent certificate is for TLS clients, with HOST_ID as CN,
a URI SAN enoexec://host/HOST_ID and a DNS SAN HOST_ID; set host_id in the
agent's config to the same HOST_ID.

Environment:
  DAYS     validity of collector and agent certificates (default 825)
  CA_DAYS  validity of the CA certificate (default 3650)

Existing files are never overwritten: remove them first to make new ones.
Keys are written mode 0600; copy DIR/ca.crt to every host, each key only to
the host it belongs to, and keep DIR/ca.key offline.

Example:
  $PROG ca ./pki
  $PROG collector ./pki collector.example 10.0.0.5
  $PROG agent ./pki web-01
USAGE
}

die() {
    echo "$PROG: $*" >&2
    exit 2
}

need_args() {
    local have=$1 want=$2
    [ "$have" -ge "$want" ] || { usage >&2; exit 2; }
}

check_name() {
    # A DNS-safe label sequence, so the value is valid in CN, DNS and URI SANs.
    [[ $1 =~ ^[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?$ ]] \
        || die "'$1' is not a valid $2: use letters, digits, dots, dashes and underscores"
}

check_ip() {
    [[ $1 =~ ^[0-9]{1,3}(\.[0-9]{1,3}){3}$ || $1 =~ ^[0-9A-Fa-f:]+$ && $1 == *:* ]] \
        || die "'$1' is not an IPv4 or IPv6 address"
}

refuse_existing() {
    local f
    for f in "$@"; do
        [ ! -e "$f" ] || die "$f already exists; remove it first to make a new one"
    done
}

require_ca() {
    local dir=$1
    if [ ! -f "$dir/ca.crt" ] || [ ! -f "$dir/ca.key" ]; then
        local here=""
        [ ! -f "$INSTALLED_CA/ca.key" ] || [ "$(cd "$dir" 2>/dev/null && pwd)" = "$INSTALLED_CA" ] \
            || here=" (this host's CA, made by install.sh --collector, is in $INSTALLED_CA)"
        die "no CA in $dir (ca.crt and ca.key)$here: give the directory that holds the CA (install.sh --collector keeps it in $INSTALLED_CA on the collector's host), or make a new CA with '$PROG ca $dir'"
    fi
}

new_key() {
    openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null
    chmod 600 "$1"
}

serial() {
    echo "0x$(openssl rand -hex 16)"
}

# sign DIR NAME CN EXTENSIONS: sign a CSR for DIR/NAME.key with the CA in DIR.
sign() {
    local dir=$1 name=$2 cn=$3 ext=$4
    printf '%s\n' "$ext" > "$WORK/ext.cnf"
    openssl req -new -key "$dir/$name.key" -subj "/O=enoexec/CN=$cn" -out "$WORK/req.csr"
    openssl x509 -req -in "$WORK/req.csr" -CA "$dir/ca.crt" -CAkey "$dir/ca.key" \
        -set_serial "$(serial)" -days "$DAYS" -sha256 \
        -extfile "$WORK/ext.cnf" -out "$dir/$name.crt" 2>/dev/null
    chmod 644 "$dir/$name.crt"
}

cmd_ca() {
    need_args $# 1
    local dir=$1
    mkdir -p "$dir"
    refuse_existing "$dir/ca.key" "$dir/ca.crt"
    new_key "$dir/ca.key"
    openssl req -x509 -new -key "$dir/ca.key" -subj "/O=enoexec/CN=enoexec CA" \
        -set_serial "$(serial)" -days "$CA_DAYS" -sha256 \
        -addext "basicConstraints=critical,CA:TRUE,pathlen:0" \
        -addext "keyUsage=critical,keyCertSign,cRLSign" \
        -addext "subjectKeyIdentifier=hash" \
        -out "$dir/ca.crt"
    chmod 644 "$dir/ca.crt"
    echo "wrote $dir/ca.crt and $dir/ca.key (valid $CA_DAYS days)"
}

cmd_collector() {
    need_args $# 2
    local dir=$1 host=$2
    shift 2
    check_name "$host" "host name"
    require_ca "$dir"
    local name="collector-$host"
    refuse_existing "$dir/$name.key" "$dir/$name.crt"
    local san="DNS:$host" ip
    for ip in "$@"; do
        check_ip "$ip"
        san="$san,IP:$ip"
    done
    new_key "$dir/$name.key"
    sign "$dir" "$name" "$host" "basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=serverAuth
subjectKeyIdentifier=hash
authorityKeyIdentifier=keyid
subjectAltName=$san"
    echo "wrote $dir/$name.crt and $dir/$name.key ($san, valid $DAYS days)"
}

cmd_agent() {
    need_args $# 2
    local dir=$1 host_id=$2
    check_name "$host_id" "host id"
    require_ca "$dir"
    local name="agent-$host_id"
    refuse_existing "$dir/$name.key" "$dir/$name.crt"
    local san="URI:enoexec://host/$host_id,DNS:$host_id"
    new_key "$dir/$name.key"
    sign "$dir" "$name" "$host_id" "basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=clientAuth
subjectKeyIdentifier=hash
authorityKeyIdentifier=keyid
subjectAltName=$san"
    echo "wrote $dir/$name.crt and $dir/$name.key ($san, valid $DAYS days)"
}

main() {
    [ $# -ge 1 ] || { usage >&2; exit 2; }
    [[ $DAYS =~ ^[1-9][0-9]*$ ]] || die "DAYS must be a positive number of days, not '$DAYS'"
    [[ $CA_DAYS =~ ^[1-9][0-9]*$ ]] || die "CA_DAYS must be a positive number of days, not '$CA_DAYS'"
    command -v openssl >/dev/null || die "openssl not found: install it (apt-get install openssl)"
    umask 077
    WORK=$(mktemp -d)
    trap 'rm -rf "$WORK"' EXIT
    local cmd=$1
    shift
    case $cmd in
        -h|--help|help) usage ;;
        ca) cmd_ca "$@" ;;
        collector) cmd_collector "$@" ;;
        agent) cmd_agent "$@" ;;
        *) echo "$PROG: unknown command '$cmd'" >&2; usage >&2; exit 2 ;;
    esac
}

main "$@"
