"""Section 4, the daemon's memory over a walk: RSS and nodes held before, after a `find` of every entry, and after the
kernel forgets them."""
import json
import os
import shlex
import time

from .common import drop_caches, log, rm, sh


def memory(ctx):
    """The daemon's memory across a walk: RSS (and the nodes it holds for the kernel, `nodes` in
    .snapfs/status) after mounting, after a `find` that stats every entry of a few snapshots, and after the kernel
    forgets them (`echo 2 > /proc/sys/vm/drop_caches` until the node count is back, at most 30 s)."""
    c = ctx.cfg
    if not ctx.has_snapfs_mount:
        return
    store, empty, mnt = ctx.p("mem-store"), ctx.p("mem-empty"), ctx.p("mnt", "mem")
    os.makedirs(empty)
    sh(ctx.snapfs_cmd("init", store, "--state", empty))
    per = c["memory_entries"] // c["memory_snapshots"]
    log(f"4. memory: {c['memory_snapshots']} snapshots of {per:,} files")
    t0 = time.perf_counter()
    # Every file new in every snapshot: one object, so one inode, per entry.
    sh(ctx.snapfs_cmd("bench-populate", store, "--count", str(c["memory_snapshots"]), "--files", str(per),
                       "--changed", str(per), "--size", "16"))
    populate = time.perf_counter() - t0
    ctx.mount_snapfs(store, mnt)
    pid = ctx.mounts.daemons[mnt].pid

    def vm(field):
        for line in open(f"/proc/{pid}/status"):
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
        return None

    def nodes():
        return json.load(open(os.path.join(mnt, ".snapfs", "status"))).get("nodes")

    time.sleep(1)
    out = {"entries": per * c["memory_snapshots"], "snapshots": c["memory_snapshots"], "populate": populate}
    out["before"] = (vm("VmRSS"), nodes())
    snaps = [os.path.join(mnt, n) for n in sorted(os.listdir(mnt)) if n != "latest" and not n.startswith(".")]
    t0 = time.perf_counter()
    # %s needs each entry's attributes: one LOOKUP per entry, as `ls -lR` or `tar` would make.
    walked = sh("find " + " ".join(shlex.quote(x) for x in snaps) + " -printf '%s\\n' | wc -l")
    out["walk_s"] = time.perf_counter() - t0
    out["walked"] = int(walked.strip())
    out["walk"] = (vm("VmRSS"), nodes())
    out["peak"] = vm("VmHWM")
    t0 = time.perf_counter()
    deadline = t0 + 30
    while True:
        drop_caches(level=2)
        time.sleep(0.5)
        n = nodes()
        if n is None or n <= out["before"][1] + 16 or time.perf_counter() > deadline:
            break
    out["forget_s"] = time.perf_counter() - t0
    out["after"] = (vm("VmRSS"), nodes())
    ctx.mounts.unmount(mnt)
    rm(store)
    rm(empty)
    ctx.results["memory"] = out

# -- report ----------------------------------------------------------------------------------------------------

