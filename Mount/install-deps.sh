#!/bin/sh
# What building and testing the mount needs on Debian/Ubuntu: libfuse3 headers (the CFuse3 module's pkg-config
# entry), fusermount3 and /sbin/mount.fuse3, and the tools the mount tests drive (rsync, getfattr, restic).
# Idempotent; CI and a fresh developer machine run it before `swift build`.
set -eu
need=""
for p in libfuse3-dev fuse3 pkg-config rsync attr restic; do
    dpkg -s "$p" >/dev/null 2>&1 || need="$need $p"
done
if [ -n "$need" ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $need
fi
[ -e /dev/fuse ] || echo "warning: /dev/fuse is missing; the mount tests will fail (set SNAPFS_SKIP_MOUNT_TESTS=1 to skip them)" >&2
