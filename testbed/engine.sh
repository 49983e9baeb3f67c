#!/bin/sh
# Make sure a Docker engine answers `docker info`; start one if we may.
#
# An engine that already runs is never stopped, restarted or reconfigured.
# Otherwise, as root on Debian/Ubuntu: install docker.io, docker-compose and
# debootstrap if missing, start dockerd in the background without iptables
# (containers get no route out; ports published on 127.0.0.1 still work) and
# wait up to ENGINE_WAIT_S seconds for it. Idempotent; one-line errors.
set -u
LOG=/var/log/stackcheck-dockerd.log
WAIT_S="${ENGINE_WAIT_S:-60}"

fail() {
    echo "engine.sh: $*" >&2
    exit 1
}

engine_up() {
    docker info >/dev/null 2>&1
}

if command -v docker >/dev/null 2>&1 && engine_up; then
    exit 0
fi

[ "$(id -u)" -eq 0 ] || fail "no Docker engine answers and we are not root: start one (dockerd) or set DOCKER_HOST"
[ -r /etc/os-release ] || fail "no Docker engine answers and /etc/os-release is missing: cannot tell how to install one"
. /etc/os-release
case " ${ID:-} ${ID_LIKE:-} " in
*" debian "* | *" ubuntu "*) ;;
*) fail "no Docker engine answers and ${ID:-this system} is not Debian/Ubuntu: install and start Docker by hand" ;;
esac

missing=""
command -v dockerd >/dev/null 2>&1 || missing="$missing docker.io"
command -v docker-compose >/dev/null 2>&1 || missing="$missing docker-compose"
command -v debootstrap >/dev/null 2>&1 || missing="$missing debootstrap"
if [ -n "$missing" ]; then
    echo "engine.sh: installing$missing" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null || fail "apt-get update failed"
    # shellcheck disable=SC2086 # word splitting of the package list is intended
    apt-get install -y -qq $missing >/dev/null || fail "apt-get install$missing failed"
fi

# A dockerd may be starting already (a second run of this script, or a
# service manager): only start our own if none is running at all.
if ! pgrep -x dockerd >/dev/null 2>&1; then
    echo "engine.sh: starting dockerd (log: $LOG)" >&2
    # Every compose project gets a bridge network of its own; the default
    # address pools hold about 31, too few for bench/fleet.py's 32 stacks.
    # /24 networks from one /16 make 256 (10.201/16 is on no interface here).
    setsid nohup dockerd --iptables=false --ip6tables=false \
        --default-address-pool base=10.201.0.0/16,size=24 >>"$LOG" 2>&1 </dev/null &
fi

waited=0
while ! engine_up; do
    if [ "$waited" -ge "$WAIT_S" ]; then
        fail "dockerd did not answer 'docker info' within ${WAIT_S}s; see $LOG"
    fi
    sleep 1
    waited=$((waited + 1))
done
