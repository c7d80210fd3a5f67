"""Section 5 (not in the default run), page size: the warm read of one file on ext4 with large folios, with 4 KiB
pages, and through SnapFS."""
import os

from .common import MIB, Stream, log, refill_round, rm, sh, timed
from .kernel import page_cache_folios
from .stats import median


def page_size(ctx):
    """Why the warm sequential read of any FUSE file stays below raw here: the same file on ext4 with its large
    folios, on ext4 with 4 KiB pages (data=journal turns ext4's large folios off; the read path is the same), and
    through SnapFS, whose FUSE page cache this kernel gives 4 KiB pages only. Refilled and timed as the read
    path's warm row is."""
    c = ctx.cfg
    log("4. page size: the same file on ext4 (large folios), ext4 data=journal (4 KiB pages) and SnapFS")
    src = ctx.p("pages-state")
    os.makedirs(src)
    s = Stream(4)
    with open(os.path.join(src, "big.bin"), "wb") as f:
        left = c["big"]
        while left:
            chunk = s.read(min(left, 64 * MIB))
            f.write(chunk)
            left -= len(chunk)
    s.close()
    files = {}
    for i, (name, opts) in enumerate([("ext4, large folios", "loop"), ("ext4 data=journal, 4 KiB pages", "loop,data=journal")]):
        img, mnt = ctx.p(f"pages-{i}.img"), ctx.p("mnt", f"pages-{i}")
        sh(f"truncate -s {c['big'] + 256 * MIB} {img} && mkfs.ext4 -q -F {img}")
        os.makedirs(mnt)
        ctx.mounts.mount(mnt, ["mount", "-o", opts, img, mnt])
        sh(f"cp {src}/big.bin {mnt}/")
        files[name] = f"{mnt}/big.bin"
    if ctx.has_snapfs_mount:
        store = ctx.p("store-pages")
        sh(ctx.snapfs_cmd("init", store, "--state", src))
        sh(ctx.snapfs_cmd("trigger", store, "--format", "native-full", "--label", "p"))
        ctx.mount_snapfs(store, ctx.p("mnt", "snapfs-pages"))
        files["SnapFS"] = ctx.p("mnt", "snapfs-pages", "p", "big.bin")
    names = list(files)
    read = lambda name: timed(f"dd if={files[name]} of=/dev/null bs=1M status=none")
    rounds = 2 * len(names)
    times = {n: [] for n in names}
    for r in range(rounds):
        got = refill_round(names[r % len(names):] + names[:r % len(names)], read)
        for n in names:
            times[n].append(median(got[n]))
    log("   page size: " + "; ".join(f"{n} " + " ".join(f"{t:.3f}" for t in v) for n, v in times.items()))
    folios = {n: page_cache_folios(files[n]) for n in names}
    ctx.results["pages"] = {"times": times, "folios": folios, "rounds": rounds}
    ctx.mounts.unmount_all()
    for d in ["pages-state", "pages-0.img", "pages-1.img", "store-pages"]:
        rm(ctx.p(d))

# -- 2. snapshot cost ------------------------------------------------------------------------------------------

