"""Section `cli-memory` (not in the default run): peak RSS of `snapfs verify` and `snapfs export` of one snapshot of
1,000,000 files (100,000 with --quick), measured with `/usr/bin/time -v`. The store is filled by `snapfs
bench-populate` (every file its own 16-byte object); the export goes to a tmpfs, because each exported file is
flushed with fsync and at about 5 ms a flush here a million of them on disk would take over an hour, which says
nothing about memory."""
import json
import os
import re
import subprocess
import time

from .common import log, rm, sh


def time_v(argv, ok_codes=(0,)):
    """(peak RSS in bytes, wall seconds) of one command, from GNU time's -v report."""
    r = subprocess.run(["/usr/bin/time", "-v", *argv], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if r.returncode not in ok_codes:
        raise RuntimeError(f"command failed ({r.returncode}): {' '.join(argv)}\n{r.stderr[-2000:]}")
    return parse_time_v(r.stderr)


def parse_time_v(report):
    """(peak RSS in bytes, wall seconds) from GNU time's -v report."""
    rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", report).group(1)) * 1024
    wall = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): (?:(\d+):)?(\d+):([\d.]+)", report)
    h, m, s = wall.groups()
    return rss, int(h or 0) * 3600 + int(m) * 60 + float(s)


def cli_memory(ctx):
    c = ctx.cfg
    n = c["cli_files"]
    store, empty = ctx.p("cli-store"), ctx.p("cli-empty")
    os.makedirs(empty)
    sh(ctx.snapfs_cmd("init", store, "--state", empty))
    log(f"cli-memory: a snapshot of {n:,} files (snapfs bench-populate)")
    t0 = time.perf_counter()
    sh(ctx.snapfs_cmd("bench-populate", store, "--count", "1", "--files", str(n), "--changed", str(n), "--size", "16"))
    out = {"files": n, "populate_s": time.perf_counter() - t0}
    name = json.loads(sh(ctx.snapfs_cmd("list", store, "--json")))[0]["name"]
    log("cli-memory: snapfs verify")
    out["verify"] = time_v(ctx.snapfs("verify", store))
    target = ctx.p("mnt", "cli-export")
    os.makedirs(target)
    ctx.mounts.mount(target, ["mount", "-t", "tmpfs", "-o", f"size=8g,nr_inodes={n * 2 + 1000}", "tmpfs", target])
    log("cli-memory: snapfs export (to a tmpfs)")
    out["export"] = time_v(ctx.snapfs("export", store, name, os.path.join(target, "out")))
    ctx.mounts.unmount(target)
    ctx.results["cli_memory"] = out
    rm(store)
    rm(empty)
