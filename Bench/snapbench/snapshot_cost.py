"""Section 2, snapshot cost: native-incremental snapshots of a changing local state against rsync --link-dest and
restic backup, full copies (native-full, canonical) against cp and tar, and the cost of one `snapfs trigger` call."""
import os
import random

from .common import Stream, log, rm, sh, timed, write_file


def make_state(ctx):
    c = ctx.cfg
    d = ctx.p("state")
    os.makedirs(d)
    s = Stream(2)
    size = c["state_bytes"] // c["state_files"]
    per_dir = 1000
    for i in range(c["state_files"]):
        sub = os.path.join(d, f"shared-{i // per_dir:02d}")
        if i % per_dir == 0:
            os.makedirs(sub)
        write_file(os.path.join(sub, f"{i:06d}.sst"), s.read(size))
    s.close()
    ctx.state_file_size = size

def state_files(ctx):
    out = []
    for sub in sorted(os.listdir(ctx.p("state"))):
        for n in sorted(os.listdir(ctx.p("state", sub))):
            out.append(ctx.p("state", sub, n))
    return out

def change_state(ctx, fraction, seed):
    """Rewrites round(fraction × files) state files with new bytes of the same size (their mtime changes)."""
    files = state_files(ctx)
    k = max(1, round(len(files) * fraction))
    rng = random.Random(seed)
    s = Stream(1000 + seed)
    for path in rng.sample(files, k):
        write_file(path, s.read(ctx.state_file_size))
    s.close()
    return k, k * ctx.state_file_size

# -- 1. read path ----------------------------------------------------------------------------------------------


def snapshot_cost(ctx):
    c = ctx.cfg
    runs = c["runs"]
    log("2. snapshot cost: writing state")
    make_state(ctx)
    store = ctx.p("store-snap")
    sh(ctx.snapfs_cmd("init", store, "--state", ctx.p("state")))
    env = dict(os.environ, RESTIC_PASSWORD="snapfs-bench", RESTIC_REPOSITORY=ctx.p("restic"),
               RESTIC_CACHE_DIR=ctx.p("restic-cache"))
    os.sync()
    first = {}
    log("2. snapshot cost: first snapshots (every byte)")
    first["SnapFS native-incremental (first)"] = timed(ctx.snapfs_cmd("trigger", store, "--format", "native-incremental", "--label", "base"))
    os.makedirs(ctx.p("rsync"))
    first["rsync -a (first)"] = timed(f"rsync -a {ctx.p('state')}/ {ctx.p('rsync', 'r0')}/")
    sh(f"sync -f {ctx.p('rsync')}")
    sh("restic init --quiet", env=env)
    first["restic backup (first)"] = timed(f"restic backup --quiet {ctx.p('state')}", env=env)
    sh(f"sync -f {ctx.p('restic')}")
    ctx.results["snap_first"] = first
    incr = []
    seq = 0
    prev = ctx.p("rsync", "r0")
    for frac in c["changes"]:
        row = {"fraction": frac, "SnapFS": [], "rsync": [], "rsync+sync": [], "restic": [], "restic+sync": []}
        log(f"2. snapshot cost: {frac:.1%} changed")
        for r in range(runs):
            seq += 1
            k, nbytes = change_state(ctx, frac, seq)
            row["files"], row["bytes"] = k, nbytes
            os.sync()
            row["SnapFS"].append(timed(ctx.snapfs_cmd("trigger", store, "--format", "native-incremental", "--label", f"inc-{seq}")))
            dest = ctx.p("rsync", f"r{seq}")
            t = timed(f"rsync -a --link-dest={prev} {ctx.p('state')}/ {dest}/")
            ts = timed(f"sync -f {dest}")
            row["rsync"].append(t)
            row["rsync+sync"].append(t + ts)
            prev = dest
            t = timed(f"restic backup --quiet {ctx.p('state')}", env=env)
            ts = timed(f"sync -f {ctx.p('restic')}")
            row["restic"].append(t)
            row["restic+sync"].append(t + ts)
        incr.append(row)
    ctx.results["snap_incr"] = incr
    rm(ctx.p("rsync"))
    rm(ctx.p("restic"))
    rm(ctx.p("restic-cache"))
    # Full copies.
    full = {"SnapFS native-full": [], "SnapFS canonical": [], "cp -a": [], "cp -a + sync": [], "tar -cf": [], "tar -cf + sync": []}
    log("2. snapshot cost: full copies")
    os.makedirs(ctx.p("copies"))
    for r in range(runs):
        os.sync()
        full["SnapFS native-full"].append(timed(ctx.snapfs_cmd("trigger", store, "--format", "native-full", "--label", f"full-{r}")))
        os.sync()
        full["SnapFS canonical"].append(timed(ctx.snapfs_cmd("trigger", store, "--format", "canonical", "--label", f"canon-{r}")))
        os.sync()
        dest = ctx.p("copies", f"cp{r}")
        t = timed(f"cp -a {ctx.p('state')} {dest}")
        ts = timed(f"sync -f {ctx.p('copies')}")
        full["cp -a"].append(t)
        full["cp -a + sync"].append(t + ts)
        rm(dest)
        os.sync()
        dest = ctx.p("copies", f"t{r}.tar")
        t = timed(f"tar -cf {dest} -C {ctx.p('state')} .")
        ts = timed(f"sync -f {ctx.p('copies')}")
        full["tar -cf"].append(t)
        full["tar -cf + sync"].append(t + ts)
        rm(dest)
        # Keep the store small: every snapshot but the newest (the recovery point) may go.
        sh(ctx.snapfs_cmd("delete", store, f"full-{r}"))
        if r > 0:
            sh(ctx.snapfs_cmd("delete", store, f"canon-{r - 1}"))
    ctx.results["snap_full"] = full
    # What 10,000 snapshots through the CLI would cost: per-call time of `snapfs trigger` on a tiny state.
    log("2. snapshot cost: per-call cost of `snapfs trigger` on a tiny state")
    tiny = ctx.p("tiny-state")
    os.makedirs(tiny)
    write_file(os.path.join(tiny, "f.dat"), b"x" * 64)
    tstore = ctx.p("store-tiny")
    sh(ctx.snapfs_cmd("init", tstore, "--state", tiny))
    ts = [timed(ctx.snapfs_cmd("trigger", tstore, "--format", "native-incremental")) for _ in range(c["trigger_calls"])]
    ctx.results["trigger_call"] = ts
    ts = [timed(ctx.snapfs_cmd("--version")) for _ in range(c["trigger_calls"])]
    ctx.results["startup"] = ts
    for d in ["copies", "state", "store-snap", "tiny-state", "store-tiny"]:
        rm(ctx.p(d))

# -- 3. delete and move as the store grows -----------------------------------------------------------------------

