"""The runner: parses the flags, installs what is missing, builds the release binary, runs the chosen sections in
order, prints the tables and verdicts and writes BENCHMARKS.md. Every mount it made is undone, whatever happens."""
import argparse
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
import unittest

from . import cli_memory, document, memory, ops, pages, read_path, report, scale, snapshot_cost
from .common import REPO, SNAPFS, log, rm
from .config import MODES
from .mounts import Mounts
from .tracing import FuseRequests

DOC = """Benchmarks SnapFS against the raw backing directory, C FUSE filesystems from Debian and the tools people use today.

    Scripts/bench            # default sizes (1 GiB file, 20,000 small files, 100,000 entries, 10,000 snapshots); < 10 min
    Scripts/bench --quick    # same shapes, smaller sizes; < 2 min
    Scripts/bench --scale    # also a cold find of 1,000,000 entries (100,000 with --quick)
    Scripts/bench --self-test  # the bench's own unit tests; no root, nothing mounted

Prints markdown tables of medians (over --runs runs) with the ratio to every peer measured in the same run, marks each
row that has a target PASS or MISS, and writes BENCHMARKS.md (tables, machine, load, how to rerun). Everything it
creates lives under /var/tmp/snapfs-bench and is removed at the end, every mount included. Needs root (drop_caches,
FUSE), the release build (built if missing) and: fuse-overlayfs squashfuse squashfs-tools bindfs mergerfs rsync restic.
The code is the package in Bench/ (a module per section; tables and ratios in stats.py and report.py, tested in
Bench/tests).
"""

# Sections in the order they run; `pages`, `scale` and `cli-memory` are not in the default run.
SECTIONS = [("read", read_path.read_path), ("snapshot", snapshot_cost.snapshot_cost), ("ops", ops.delete_move),
            ("pages", pages.page_size), ("memory", memory.memory), ("scale", scale.cold_find),
            ("cli-memory", cli_memory.cli_memory)]


class Context:
    """What every section works with: sizes, scratch paths, mounts, results and notes for the report."""

    def __init__(self, args):
        self.args = args
        self.mode = "quick" if args.quick else "default"
        self.cfg = dict(MODES[self.mode])
        if args.runs:
            self.cfg["runs"] = args.runs
            self.cfg["op_runs"] = max(args.runs, 3)
        self.work = args.workdir
        self.mounts = Mounts()
        self.results = {}
        self.notes = []
        self.started = time.time()
        self.load_start = open("/proc/loadavg").read().split()[:3]
        self.has_snapfs_mount = False
        self.fuse_requests = FuseRequests()
        if self.fuse_requests.why_not:
            self.notes.append(f"Daemon requests per warm run are not counted: {self.fuse_requests.why_not}.")

    # -- helpers --------------------------------------------------------------------------------------------------

    def snapfs(self, *a):
        return [SNAPFS] + list(a)

    def snapfs_cmd(self, *a):
        return " ".join(shlex.quote(x) for x in self.snapfs(*a))

    def p(self, *parts):
        return os.path.join(self.work, *parts)

    def check_snapfs_mount(self):
        r = subprocess.run([SNAPFS, "mount", "--help"], capture_output=True, text=True)
        text = r.stdout + r.stderr
        self.mount_quiet = "--quiet" in text
        self.has_snapfs_mount = r.returncode == 0 and "MOUNTPOINT" in text.upper() and "not built" not in text
        if not self.has_snapfs_mount:
            self.notes.append("This build has no working `snapfs mount`: the SnapFS read-path and mount columns are empty.")

    def mount_snapfs(self, store, mnt, *extra):
        argv = self.snapfs("mount", store, mnt, *extra)
        if self.mount_quiet:
            argv.append("--quiet")
        self.mounts.mount(mnt, argv, foreground=True, log_path=mnt.rstrip("/") + ".log")

    def run(self):
        rm(self.work)
        os.makedirs(self.p("mnt"))
        self.check_snapfs_mount()
        chosen = self.args.sections.split(",")
        if self.args.scale and "scale" not in chosen:
            chosen.append("scale")
        unknown = [s for s in chosen if s not in dict(SECTIONS)]
        if unknown:
            raise SystemExit(f"Scripts/bench: unknown section {', '.join(unknown)} (known: {', '.join(n for n, _ in SECTIONS)})")
        for name, section in SECTIONS:
            if name in chosen:
                section(self)
        tables, self.verdicts = report.render(self.results, self.cfg)
        print(tables)
        print()
        for title, res in self.verdicts:
            print(f"{res:5s} {title}")
        path = document.write_markdown(self, tables)
        log(f"wrote {path} ({time.time() - self.started:.0f} s)")


def ensure_tools():
    need = {"fusermount3": "fuse3", "fuse-overlayfs": "fuse-overlayfs", "squashfuse": "squashfuse", "mksquashfs": "squashfs-tools",
            "bindfs": "bindfs", "mergerfs": "mergerfs", "rsync": "rsync", "restic": "restic", "openssl": "openssl"}
    missing = sorted({pkg for tool, pkg in need.items() if shutil.which(tool) is None})
    if missing:
        log(f"installing {' '.join(missing)}")
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        subprocess.run(["apt-get", "update", "-qq"], env=env, check=True)
        subprocess.run(["apt-get", "install", "-y", "-qq"] + missing, env=env, check=True, stdout=subprocess.DEVNULL)


def main():
    ap = argparse.ArgumentParser(prog="Scripts/bench", description=DOC, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="smaller sizes, same shapes (under 2 minutes)")
    ap.add_argument("--runs", type=int, default=0, help="runs per median (default 3; delete/move: 15, quick 7)")
    ap.add_argument("--cold-trees", action="store_true",
                    help="also time tar and find with a cold cache (adds about 2.5 minutes)")
    ap.add_argument("--sections", default="read,snapshot,ops,memory",
                    help="comma-separated: read, snapshot, ops, memory; and pages (not in the default run: the warm read of one "
                         "file with large folios and with 4 KiB pages, and through SnapFS) and scale (as --scale) and cli-memory (peak RSS of snapfs verify and export of "
                         "a 1,000,000-file snapshot)")
    ap.add_argument("--scale", action="store_true",
                    help="also a cold find of 1,000,000 entries (100,000 with --quick) against fuse-overlayfs and restic mount "
                         "(section scale; about 10 minutes more)")
    ap.add_argument("--self-test", action="store_true", help="run the bench's own unit tests and exit (no root needed)")
    ap.add_argument("--workdir", default="/var/tmp/snapfs-bench", help="scratch directory (removed at the end)")
    ap.add_argument("--output", default=os.path.join(REPO, "BENCHMARKS.md"), help="markdown file to write")
    ap.add_argument("--keep", action="store_true", help="keep the scratch directory (mounts are always undone)")
    ap.add_argument("--no-build", action="store_true", help="use .build/release/snapfs as it is")
    args = ap.parse_args()
    if args.self_test:
        suite = unittest.defaultTestLoader.discover(os.path.join(REPO, "Bench", "tests"), top_level_dir=os.path.join(REPO, "Bench"))
        sys.exit(0 if unittest.TextTestRunner(verbosity=1).run(suite).wasSuccessful() else 1)
    if os.geteuid() != 0:
        sys.exit("Scripts/bench: run as root (it drops the page cache and mounts FUSE filesystems)")
    ensure_tools()
    # SNAPFS_BIN names a binary built elsewhere: nothing to build here.
    if not os.environ.get("SNAPFS_BIN") and (not args.no_build or not os.path.exists(SNAPFS)):
        log("building the release binary")
        subprocess.run(["swift", "build", "-c", "release", "--product", "snapfs"], cwd=REPO, check=True,
                       stdout=subprocess.DEVNULL)
    b = Context(args)

    def on_signal(signum, frame):
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, on_signal)
    try:
        b.run()
    finally:
        b.mounts.unmount_all()
        b.fuse_requests.close()
        if not args.keep:
            try:
                rm(args.workdir)
            except Exception as e:
                log(f"cleanup: {e}")


if __name__ == "__main__":
    main()
