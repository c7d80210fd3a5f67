"""Section `scale` (--scale, not in the default run): a cold `find` of 1,000,000 entries through SnapFS, the raw
directory, fuse-overlayfs and `restic mount`. Writing the tree, snapshotting it and backing it up take minutes, which
the default run's 10 minutes cannot hold."""
import os
import shutil
import time

from . import restic
from .common import TimedOut, drop_caches, log, rm, sh, timed, write_file
from .report import SCALE_SYSTEMS


def make_tree(root, entries, per_dir=1000):
    """`entries` entries under root: one directory per `per_dir` entries, the rest files of 0 to 63 bytes."""
    n_dirs = max(1, entries // per_dir)
    blob = b"s" * 64
    for i in range(entries - n_dirs):
        sub = os.path.join(root, f"d{i % n_dirs:04d}")
        if i < n_dirs:
            os.makedirs(sub)
        write_file(os.path.join(sub, f"e{i:07d}"), blob[: i % 64])


def cold_find(ctx):
    c = ctx.cfg
    n = c["scale_entries"]
    cap = c["scale_timeout"]
    setup = {}
    log(f"scale: writing {n:,} entries")
    tree = ctx.p("scale", "tree")
    t0 = time.perf_counter()
    make_tree(tree, n)
    os.sync()
    setup[f"writing the {n:,} entries"] = time.perf_counter() - t0
    targets = {"raw": tree}
    if ctx.has_snapfs_mount:
        store = ctx.p("scale-store")
        sh(ctx.snapfs_cmd("init", store, "--state", ctx.p("scale")))
        log("scale: SnapFS snapshot")
        setup["the SnapFS native-full snapshot"] = timed(ctx.snapfs_cmd("trigger", store, "--format", "native-full", "--label", "s"))
        ctx.mount_snapfs(store, ctx.p("mnt", "scale-snapfs"))
        targets["SnapFS"] = ctx.p("mnt", "scale-snapfs", "s", "tree")
    if shutil.which("fuse-overlayfs"):
        mnt = ctx.p("mnt", "scale-overlay")
        ctx.mounts.mount(mnt, ["fuse-overlayfs", "-o", f"lowerdir={ctx.p('scale')}", mnt])
        targets["fuse-overlayfs"] = os.path.join(mnt, "tree")
    if shutil.which("restic"):
        log("scale: restic backup")
        took, root = restic.backup_and_mount(ctx, [tree], "restic-scale", ctx.p("mnt", "scale-restic"))
        setup["`restic backup`"] = took
        targets["restic mount"] = root + tree
    present = [s for s in SCALE_SYSTEMS if s in targets]
    row = {"title": f"`find -printf` (lstat each), {n:,} entries, cold cache", "times": {s: [] for s in present}}
    for r in range(c["runs"]):
        # Round-robin, the order rotated every round, as the read path's rows.
        for s in present[r % len(present):] + present[:r % len(present)]:
            if s in row.get("timeouts", {}):
                continue
            drop_caches()
            try:
                row["times"][s].append(timed(f"find {targets[s]} -printf '%i %n %s %m %T@ %p\\n' | wc -l > /dev/null", timeout=cap))
            except TimedOut:
                log(f"scale: cold find on {s} took over {cap} s: stopped")
                row.setdefault("timeouts", {})[s] = cap
                row["times"][s] = []
    log("   scale find_cold: " + "; ".join(f"{s} " + " ".join(f"{t:.2f}" for t in row["times"][s]) for s in present))
    ctx.results["scale"] = {"entries": n, "runs": c["runs"], "row": row, "setup": setup}
    ctx.mounts.unmount_all()
    for d in ["scale", "scale-store", "restic-scale", "restic-scale-cache"]:
        rm(ctx.p(d))
