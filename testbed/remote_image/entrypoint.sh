#!/bin/sh
# PID 1 of the remote test host: writable cgroups, an inner dockerd, then sshd.
set -eu
# The engine makes the cgroup hierarchies read-only in a container; the inner
# dockerd needs to create cgroups in them (a plain remount,rw is refused: busy).
for d in /sys/fs/cgroup/*; do
    mount -o remount,bind,rw "$d" 2>/dev/null || true
done
mkdir -p /run/sshd /run/engine
# iptables off: no NAT (nothing inside is reached from outside but by the
# published-on-loopback userland proxy); overlay2 needs /var/lib/docker on a volume.
# The second socket is in /run/engine, a directory the test harness mounted: the
# harness deploys and injects faults through it, the checker only ever uses SSH.
dockerd --storage-driver=overlay2 --iptables=false --ip6tables=false \
    -H unix:///var/run/docker.sock -H unix:///run/engine/docker.sock \
    >/var/log/dockerd.log 2>&1 &
exec /usr/sbin/sshd -D -e -f /etc/stackcheck-remote/sshd_config
