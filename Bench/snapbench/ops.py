"""Section 3, delete and move as the store grows: `snapfs delete`/`move` and `rm -rf`/`mv` through the mount on stores
of 10, 100 and 1,000 snapshots; the cost must not grow with the store."""
import json
import os
import random
import time

from .common import log, rm, sh, task_cpu, timed_cpu


def delete_move(ctx):
    """Each store holds N snapshots throughout: a timed delete is followed by an untimed `bench-populate
    --count 1`, a timed move by a timed move back. Sizes are interleaved run by run, in an order rotated every
    round, so a change in the machine's load hits every size alike. Wall time and CPU time (user + system of the process) are both recorded."""
    c = ctx.cfg
    sizes = c["store_sizes"]
    runs = c["op_runs"]
    stores = {}
    out = {}
    for n in sizes:
        store, empty = ctx.p(f"store-{n}"), ctx.p(f"empty-{n}")
        os.makedirs(empty)
        sh(ctx.snapfs_cmd("init", store, "--state", empty))
        t0 = time.perf_counter()
        sh(ctx.snapfs_cmd("bench-populate", store, "--count", str(n), "--files", "8", "--changed", "1", "--size", "4096"))
        out[n] = {"populate": time.perf_counter() - t0}
        stores[n] = store
    os.sync()

    def names(n):
        return [x["name"] for x in json.loads(sh(ctx.snapfs_cmd("list", stores[n], "--json")))]

    def middle(n):
        ns = names(n)
        return ns[len(ns) // 2]  # never the newest (the recovery point)

    def oldest(n):
        # Deletes take the oldest, as retention does: each store stays one unbroken chain (a delete, then a
        # snapshot added at the new end), so every delete has the same work whatever N is. Deleting from the
        # middle would thin a small store's chain run after run, and each later delete there would remove
        # more objects than one among 1,000.
        return names(n)[0]

    def refill(n, mnt=None):
        # --continue-chain: the new snapshot shares 7 of its 8 files with the newest, like every other one; a
        # fresh chain's first snapshot would hold 8 objects of its own, and a later delete of it would remove
        # 8 times as much as a delete in an unbroken chain.
        sh(ctx.snapfs_cmd("bench-populate", stores[n], "--count", "1", "--files", "8", "--changed", "1",
                           "--size", "4096", "--seed", str(random.randrange(1 << 32)), "--continue-chain"))
        if mnt:  # wait until the mount shows it, so the next operation sees a settled daemon
            newest = names(n)[-1]
            deadline = time.time() + 10
            while not os.path.exists(os.path.join(mnt, newest)) and time.time() < deadline:
                time.sleep(0.02)

    def measure(label, fn):
        log(f"3. {label}")
        for n in sizes:
            out[n][label] = {"wall": [], "cpu": []}
        for r in range(runs):
            # Rotated every round: whichever size runs right after another size's untimed refill would
            # otherwise always be the same one.
            for n in sizes[r % len(sizes):] + sizes[:r % len(sizes)]:
                fn(n, r, out[n][label])

    def cli_delete(n, r, acc):
        v = oldest(n)
        os.sync()
        w, cpu = timed_cpu(ctx.snapfs("delete", stores[n], v))
        acc["wall"].append(w)
        acc["cpu"].append(cpu)
        refill(n)

    def cli_move(n, r, acc):
        v = middle(n)
        for a, b in [(v, f"moved-{r}"), (f"moved-{r}", f"moved-again-{r}")]:
            os.sync()
            w, cpu = timed_cpu(ctx.snapfs("move", stores[n], a, b))
            acc["wall"].append(w)
            acc["cpu"].append(cpu)

    measure("delete", cli_delete)
    measure("move", cli_move)
    if ctx.has_snapfs_mount:
        mnts = {}
        for n in sizes:
            mnts[n] = ctx.p("mnt", f"store-{n}")
            ctx.mount_snapfs(stores[n], mnts[n])
        pids = {n: ctx.mounts.daemons[mnts[n]].pid for n in sizes}

        def mount_rm(n, r, acc):
            v = oldest(n)
            os.sync()
            d0 = task_cpu(pids[n])
            w, cpu = timed_cpu(["rm", "-rf", os.path.join(mnts[n], v)])
            cpu += task_cpu(pids[n]) - d0
            if os.path.exists(os.path.join(mnts[n], v)):
                raise RuntimeError(f"rm -rf {mnts[n]}/{v} left it in place")
            acc["wall"].append(w)
            acc["cpu"].append(cpu)
            refill(n, mnts[n])

        def mount_mv(n, r, acc):
            v = middle(n)
            for a, b in [(v, f"mvd-{r}"), (f"mvd-{r}", f"mvd-again-{r}")]:
                os.sync()
                d0 = task_cpu(pids[n])
                w, cpu = timed_cpu(["mv", "-T", os.path.join(mnts[n], a), os.path.join(mnts[n], b)])
                cpu += task_cpu(pids[n]) - d0
                acc["wall"].append(w)
                acc["cpu"].append(cpu)

        measure("mount_rm", mount_rm)
        measure("mount_mv", mount_mv)
        for n in sizes:
            ctx.mounts.unmount(mnts[n])
    for n in sizes:
        rm(stores[n])
        rm(ctx.p(f"empty-{n}"))
    ctx.results["ops"] = out

