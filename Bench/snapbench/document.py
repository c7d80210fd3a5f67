"""BENCHMARKS.md: the machine, how to rerun, the tables, the method; hand-written analysis below the marker is kept."""
import datetime
import os
import platform
import time

from .common import REPO, sh
from .config import APT_PACKAGES, NOTES_MARKER
from .kernel import proactive_reclaim


def keep_analysis(old, new):
    """The new generated text followed by everything from NOTES_MARKER on in the old file (hand-written analysis
    survives a rerun); the new text alone when the old file has no marker."""
    if old and NOTES_MARKER in old:
        return new + "\n" + old[old.index(NOTES_MARKER):]
    return new


def machine(ctx):
    mem = next(l for l in open("/proc/meminfo") if l.startswith("MemTotal")).split()[1]
    disk_dev = sh(f"df --output=source {work_parent(ctx)} | tail -1").strip()
    fstype = sh(f"df --output=fstype {work_parent(ctx)} | tail -1").strip()
    base = os.path.basename(disk_dev)
    rot = ""
    try:
        rot = open(f"/sys/block/{base}/queue/rotational").read().strip()
        rot = f"rotational={rot}"
    except OSError:
        pass
    cpu = ""
    for l in open("/proc/cpuinfo"):
        if l.startswith("model name"):
            cpu = l.split(":", 1)[1].strip()
            break
    def ver(cmd):
        try:
            return sh(cmd + " 2>&1", check=False).strip().splitlines()[0]
        except Exception:
            return "?"
    commit = sh(f"git -C {REPO} rev-parse --short HEAD", check=False).strip()
    dirty = sh(f"git -C {REPO} status --porcelain --untracked-files=no", check=False).strip()
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "nproc": os.cpu_count(), "cpu": cpu, "memory": f"{int(mem) / 1024 / 1024:.1f} GiB",
        "kernel": platform.release(), "disk": f"{disk_dev} ({fstype}, {rot})" if rot else f"{disk_dev} ({fstype})",
        "load_start": " ".join(ctx.load_start), "load_end": " ".join(open("/proc/loadavg").read().split()[:3]),
        "commit": commit + (" (with local changes)" if dirty else ""),
        "duration": f"{time.time() - ctx.started:.0f} s",
        "reclaim": proactive_reclaim(),
        "versions": {p: ver(f"dpkg-query -W -f='${{Version}}' {p}") for p in
                     ["fuse-overlayfs", "squashfuse", "bindfs", "mergerfs", "libfuse3-3", "rsync", "restic", "tar"]},
    }

def work_parent(ctx):
    d = ctx.work
    while not os.path.exists(d):
        d = os.path.dirname(d)
    return d

def write_markdown(ctx, tables):
    """Writes BENCHMARKS.md (or --output) and returns its path."""
    c = ctx.cfg
    m = machine(ctx)
    ctx.machine_info = m
    v = m["versions"]
    lines = [
        "# Benchmarks",
        "",
        f"Latest run: **{m['date']}**, mode `{ctx.mode}`{' (--runs ' + str(ctx.args.runs) + ')' if ctx.args.runs else ''}{' with --cold-trees' if ctx.args.cold_trees else ''}, "
        f"commit {m['commit']}, release build, {m['duration']}.",
        "",
        "## Rerun",
        "",
        "```sh",
        "Scripts/bench            # default sizes, under 10 minutes; writes this file",
        "Scripts/bench --quick    # same shapes, smaller sizes, under 2 minutes",
        "Scripts/bench --runs 5   # more runs per median; --sections read,snapshot,ops,memory to run some only",
        "Scripts/bench --sections pages  # not in the default run: one file with large folios, with 4 KiB pages, through SnapFS",
        "Scripts/bench --cold-trees  # also tar and find with a cold cache (about 2.5 minutes more)",
        "```",
        "",
        "Run as root on an otherwise idle machine (it drops the page cache for the cold rows and mounts FUSE filesystems). "
        "It builds `.build/release/snapfs` if missing, installs what it lacks with apt-get "
        f"({', '.join(APT_PACKAGES)}), works in /var/tmp/snapfs-bench and removes it, and every mount, at the end. "
        "Data is generated from fixed seeds (AES-CTR keystream), so every run reads and writes the same bytes.",
        "",
        "## Machine",
        "",
        f"- CPU: {m['cpu']}, {m['nproc']} cores; memory {m['memory']}; kernel {m['kernel']}; disk {m['disk']}",
        f"- load average (1, 5, 15 min) at start: {m['load_start']}; at end: {m['load_end']}"
        + ("  — the machine was shared with other builds during this run: treat small differences as noise." if float(m['load_start'].split()[0]) > 0.5 or float(m['load_end'].split()[0]) > 0.5 else ""),
        "- Debian packages: " + ", ".join(f"{k} {x}" for k, x in v.items()),
        *([f"- {m['reclaim']}"] if m.get("reclaim") else []),
        "",
        "## Results",
        "",
        tables,
        "",
        "## Method",
        "",
        "- Every figure is the median of several runs of the same command, timed from start to exit; each peer is measured in "
        "the same run, on the same data, on the same disk, and the ratios compare those medians.",
        "- Read path: `raw` is the directory the data was written to. fuse-overlayfs mounts it as its only (lower) layer, bindfs "
        "and mergerfs mount it with their defaults, squashfuse mounts a squashfs image of it made with `mksquashfs -noI -noD -noF -noX` "
        "(no compression, so it does not pay for decompression). SnapFS serves a native-full snapshot of the same directory from "
        "its store (same disk), through `snapfs mount`. Cold rows run `sync; echo 3 > /proc/sys/vm/drop_caches` before each run "
        "and go round-robin over the systems, the order rotated every round, so that the disk's drift within a run is shared "
        "rather than landing on one system. `tar`, `find` and `ls -l` run once per system untimed, then round-robin; with "
        "`--cold-trees`, `tar` and `find` also get cold rows, each cold run followed at once by the same system's warm run "
        "(the cold run filled its caches). The warm sequential read is refilled every round, one round per FUSE file system: the cache is "
        "dropped, every system is read twice in the round's order (one read fills its page cache, one settles those pages on the "
        "active list; raw last) and then three more times, timed, interleaved over the systems; a round counts its median. The "
        "FUSE file filled first after a drop gets pages that copy slower (10% to 2.7× here), so each FUSE file system takes "
        "that place in exactly one round and the median over rounds leaves it out. A system whose warm reads in a round take over ten "
        "times raw's is served by its daemon rather than the page cache (bindfs, mergerfs) and is not refilled again; its cell says "
        "how many rounds it ran. `tar` writes to a pipe (`tar -cf - . | cat > /dev/null`) because GNU tar does not "
        "read the files when the archive is /dev/null. "
        f"A timed warm `tar`, `find` or `ls -l` run that takes over {c['warm_timeout']} s (more than ten "
        f"times the raw directory's) is stopped and that system is not run again in the row; its cell reads \"> {c['warm_timeout']} (stopped)\", "
        "a bound that can only understate how far ahead SnapFS is. For `ls -l`, peers list a directory holding that many empty "
        "subdirectories; SnapFS lists the root of a store holding that many snapshots (one small file each).",
        "- `restic mount`: the same small files are backed up with `restic backup` into a fresh repository on the same disk and "
            "browsed through `restic mount` (its `snapshots/latest`); it is a peer on the `tar` rows and in the `--scale` cold `find`.",
            "- Snapshot cost: between runs a seeded choice of state files is rewritten with new bytes of the same size; SnapFS, "
        "rsync and restic then each take their next snapshot of the same state. A SnapFS snapshot is durable when the command "
        "returns (the store is flushed with syncfs); rsync, restic, cp and tar are not, hence the `+ sync` columns.",
        "- Delete and move: `snapfs bench-populate` (a hidden subcommand) commits N snapshots through the store's ordinary "
        "path in one process, because N separate `snapfs trigger` calls would dominate the run; see the per-call figure above.",
    ]
    for n in ctx.notes:
        lines.append(f"- {n}")
    lines.append("")
    path = ctx.args.output
    old = open(path).read() if os.path.exists(path) else ""
    with open(path, "w") as f:
        f.write(keep_analysis(old, "\n".join(lines)))
    return path
