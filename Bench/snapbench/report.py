"""Markdown tables of a run's results, one renderer per section, and the verdict of every row that has a target.
Pure: results and sizes in, text and verdicts out (the unit tests feed it made-up results)."""
from .config import ALL_PEERS, MIB, PEERS, WARM_READS
from .stats import flat_verdict, human, median, read_verdict, row_medians, speed_ratio, table


def render(results, cfg):
    """(markdown of every section that ran, [(row title, PASS/MISS/—)])."""
    out, verdicts = [], []
    for section in (read_section, snapshot_section, ops_section, memory_section, pages_section, scale_section, cli_memory_section):
        section(results, cfg, out, verdicts)
    return "\n".join(out), verdicts


def read_cell(key, row, s, med, cfg):
    """One system's cell of a read-path row."""
    touts = row.get("timeouts", {})
    m = med.get(s)
    if s in touts:
        return f"> {touts[s]} (stopped)"
    if m is None:
        return "—"
    if key.startswith("seq"):
        rounds = len(row["times"][s]) if s in row.get("one_round", []) else 0
        return f"{m:.3f} ({cfg['big'] / MIB / m:,.0f} MiB/s" + (f"; {rounds} round{'s' if rounds > 1 else ''})" if rounds else ")")
    return f"{m:.3f}"


def read_section(R, c, out, verdicts):
    if "read" not in R:
        return
    refills = R["read"].get("seq_warm", {}).get("rounds", c["runs"])
    per = R["read"].get("seq_warm", {}).get("reads_per_round", 1)
    out.append(f"### 1. Read path (median of {c['runs']} runs; the cold {human(c['big'])} read: of {c['seq_cold_runs']}; the warm one: median over {refills} refills of each refill's median of {per} reads; seconds, lower is better)\n")
    out.append("Ratios are speed relative to each peer (peer time ÷ SnapFS time): above 1.0× SnapFS is faster. "
               "`restic mount` (Go, go-fuse) serves a `restic backup` of the same files and is measured on the `tar` rows only; "
               "the target compares SnapFS with the C FUSE peers.\n")
    cols = ["raw", "SnapFS"] + ALL_PEERS
    rows = []
    for key, row in R["read"].items():
        med = row_medians(row)
        touts = row.get("timeouts", {})
        sn = med.get("SnapFS")
        cells = [read_cell(key, row, s, med, c) for s in cols]
        ratios = [speed_ratio(med.get(s), sn, s in touts, "SnapFS" in touts) for s in ["raw"] + ALL_PEERS]
        target, res = read_verdict(key, med, touts, PEERS)
        if sn is not None:
            verdicts.append((row["title"], res))
        rows.append([row["title"], *cells, *ratios, target, res])
    out.extend(table(["measurement", *cols, "SnapFS vs raw", *(f"vs {p}" for p in ALL_PEERS), "target", "result"], rows))
    counted = [(row["title"], row["requests"]) for row in R["read"].values() if row.get("requests")]
    if counted:
        out.append("\nRequests the kernel sent each daemon in one more warm run after the timed ones (tracepoint "
                   "`fuse:fuse_request_send`; where SnapFS's daemon gets next to none, the row times the kernel's "
                   "caches, the same code for every FUSE file system):\n")
        for title, reqs in counted:
            out.append(f"- {title}: " + "; ".join(f"{s} {requests_cell(n, ops)}" for s, (n, ops) in reqs.items()))
    m = R.get("read_meta", {})
    extra = []
    if "snapshot_data_s" in m:
        extra.append(f"taking the SnapFS native-full snapshot of this data: {m['snapshot_data_s']:.1f} s")
    if "populate_roots_s" in m:
        extra.append(f"adding {c['root_snapshots']:,} snapshots in one process (`snapfs bench-populate`): {m['populate_roots_s']:.1f} s")
    if "mksquashfs_s" in m:
        extra.append(f"`mksquashfs` of the same data: {m['mksquashfs_s']:.1f} s")
    if "restic_backup_s" in m:
        extra.append(f"`restic backup` of the small files: {m['restic_backup_s']:.1f} s")
    if extra:
        out.append("\nSetup (once, not in the table): " + "; ".join(extra) + ".\n")
    if m.get("tar_warm_send_opens"):
        t = {k: median(v) for k, v in m["tar_warm_send_opens"].items()}
        out.append(f"The warm `tar` again with the kernel sending OPEN and RELEASE for every file (`snapfs mount --send-opens`; "
                   f"FUSE passthrough, which would give the warm sequential read raw's page cache, is set up in the reply to an "
                   f"OPEN): SnapFS {t['SnapFS']:.3f} s, raw {t['raw']:.3f} s: {t['SnapFS'] / t['raw']:.2f}× raw time "
                   f"(target ≤ 3×; median of {len(m['tar_warm_send_opens']['SnapFS'])} runs).\n")


def requests_cell(n, ops):
    """Requests a daemon got, with its four most frequent opcodes: `1,234 (LOOKUP 1,000, GETATTR 234)`."""
    top = sorted(ops.items(), key=lambda kv: -kv[1])[:4]
    return f"{n:,}" + (" (" + ", ".join(f"{op} {k:,}" for op, k in top) + ")" if top and n else "")


def snapshot_section(R, c, out, verdicts):
    if "snap_incr" in R:
        out.append(f"### 2. Snapshot cost, local engine (state: {c['state_files']:,} files, {human(c['state_bytes'])}; median of {c['runs']} runs; seconds)\n")
        out.append("`SnapFS` is `snapfs trigger --format native-incremental` (it flushes the store to disk before it returns); "
                   "`rsync` is `rsync -a --link-dest=PREV` into a new directory, `restic` the next `restic backup` of the same "
                   "repository; `+ sync` adds the `sync -f` that makes their copy durable too. Ratio: peer time ÷ SnapFS time.\n")
        rows = []
        for row in R["snap_incr"]:
            m = {k: median(row[k]) for k in ["SnapFS", "rsync", "rsync+sync", "restic", "restic+sync"]}
            res = "PASS" if m["SnapFS"] <= m["rsync"] else "MISS"
            verdicts.append((f"native-incremental, {row['fraction']:.1%} changed", res))
            rows.append([f"{row['fraction']:.1%}", f"{row['files']:,}", human(row['bytes']), f"{m['SnapFS']:.3f}", f"{m['rsync']:.3f}",
                         f"{m['rsync+sync']:.3f}", f"{m['restic']:.3f}", f"{m['restic+sync']:.3f}", f"{m['rsync'] / m['SnapFS']:.2f}×",
                         f"{m['rsync+sync'] / m['SnapFS']:.2f}×", f"{m['restic'] / m['SnapFS']:.2f}×", "≤ 1.0× rsync --link-dest time", res])
        out.extend(table(["changed", "files", "bytes", "SnapFS", "rsync --link-dest", "rsync + sync", "restic backup", "restic + sync",
                          "vs rsync", "vs rsync + sync", "vs restic", "target", "result"], rows))
        rows = R["snap_incr"]
        if len(rows) >= 2:
            a, b = rows[0], rows[-1]
            for k in ["SnapFS", "rsync", "restic"]:
                slope = (median(b[k]) - median(a[k])) / ((b["bytes"] - a["bytes"]) / MIB)
                out.append(f"- {k}: {median(a[k]):.3f} s at {human(a['bytes'])} changed → {median(b[k]):.3f} s at {human(b['bytes'])}: "
                           f"{slope * 1000:.1f} ms per changed MiB, {median(a[k]):.3f} s fixed")
        f = R["snap_first"]
        out.append("\nFirst snapshot (every byte new): " + "; ".join(f"{k}: {v:.2f} s" for k, v in f.items()) + ".\n")
    if "snap_full" in R:
        m = {k: median(v) for k, v in R["snap_full"].items()}
        out.append(f"Full copies of the same state (median of {c['runs']} runs; no target, for comparison):\n")
        out.extend(table(["operation", "seconds", "MiB/s", "SnapFS native-full vs it", "SnapFS canonical vs it"],
                         [[k, f"{v:.3f}", f"{c['state_bytes'] / MIB / v:,.0f}", f"{v / m['SnapFS native-full']:.2f}×",
                           f"{v / m['SnapFS canonical']:.2f}×"] for k, v in m.items()]))
        tc = median(R["trigger_call"])
        out.append(f"\n`snapfs trigger` of a one-file state, per call (median of {len(R['trigger_call'])}): {tc * 1000:.0f} ms, "
                   f"so {c['root_snapshots']:,} snapshots through the CLI take about {tc * c['root_snapshots']:.0f} s; "
                   f"process start alone (`snapfs --version`): {median(R['startup']) * 1000:.0f} ms.\n")


OPS_LABELS = [("delete", "`snapfs delete`"), ("move", "`snapfs move`"),
              ("mount_rm", "`rm -rf MOUNT/S`"), ("mount_mv", "`mv MOUNT/S MOUNT/T`")]


def ops_section(R, c, out, verdicts):
    if "ops" not in R:
        return
    ops = R["ops"]
    sizes = sorted(ops)
    out.append(f"### 3. Delete and move as the store grows (median of {c['op_runs']} runs per size; milliseconds)\n")
    out.append("Each store is an incremental chain of 8-file snapshots (1 file new per snapshot) and keeps its size: "
               "after each delete one snapshot is added back (untimed); each move is followed by a second move of the same snapshot. The "
               "snapshot deleted is the oldest (as retention deletes), so every store stays one unbroken chain and each delete has the same work; the snapshot moved is the middle one. Sizes are interleaved run by run, in an order rotated every round. `snapfs delete` / "
               "`snapfs move` include process start. CPU is user + system time of the command, plus, through the mount, the "
               "daemon's (all its threads, which includes its catalog poller).\n")
    rows = []
    for key, label in OPS_LABELS:
        if key not in ops[sizes[0]]:
            continue
        for kind in ["wall", "cpu"]:
            vals = [[x for x in ops[n][key][kind] if x is not None] for n in sizes]
            if any(not v for v in vals):
                continue
            meds = [median(v) for v in vals]
            ratio, res = flat_verdict(meds)
            target = "within ±20%" if key in ("delete", "mount_rm") else "— (±20%, as delete)"
            if kind == "cpu":
                target = "(CPU, for reference)"
                res = "—"
            else:
                verdicts.append((f"{label} {sizes[-1]:,} vs {sizes[0]:,}", res))
            rows.append([label + (" wall" if kind == "wall" else " CPU"), *(f"{x * 1000:.1f}" for x in meds), f"{ratio:.2f}×", target, res])
    out.extend(table(["operation", *(f"{n:,} snapshots" for n in sizes), f"{sizes[-1]:,} vs {sizes[0]:,}", "target", "result"], rows))
    out.append("\nPopulating the stores (`snapfs bench-populate`, one process): "
               + "; ".join(f"{n:,} snapshots in {ops[n]['populate']:.1f} s" for n in sizes) + ".\n")


def mib(b):
    return f"{b / MIB:,.1f}" if b is not None else "—"


def memory_section(R, c, out, verdicts):
    if "memory" not in R:
        return
    M = R["memory"]
    out.append(f"### 4. Daemon memory over a walk of {M['entries']:,} entries across {M['snapshots']} snapshots (one run)\n")
    out.append("Each snapshot's files are its own objects (one inode per entry). The walk is `find SNAPSHOTS -printf '%s\\n'`, "
               "which looks up and stats every entry; then `echo 2 > /proc/sys/vm/drop_caches` is repeated until the "
               "daemon's node count (`nodes` in `.snapfs/status`) is back to where it was, or 30 s pass. RSS is VmRSS of "
               "the daemon; the peak is its VmHWM at the end of the walk.\n")
    rows = []
    base = M["before"][0]
    for key, label in [("before", "mounted, before the walk"), ("walk", f"after the walk ({M['walked']:,} entries, {M['walk_s']:.1f} s)"),
                       ("after", f"after drop_caches ({M['forget_s']:.1f} s)")]:
        rss, n = M[key]
        rows.append([label, mib(rss), f"{n:,}", f"{rss / base:.2f}×"] if rss and base and n is not None else [label, mib(rss), str(n), "—"])
    out.extend(table(["point", "RSS (MiB)", "nodes held", "vs before"], rows))
    out.append(f"\nPeak RSS during the walk: {mib(M['peak'])} MiB. Populating the store (`snapfs bench-populate`): {M['populate']:.1f} s.\n")


def pages_section(R, c, out, verdicts):
    if "pages" not in R:
        return
    P = R["pages"]
    out.append(f"### 5. Page size of the page cache: warm sequential read of one {human(c['big'])} file (median over "
               f"{P['rounds']} refills of each refill's median of {WARM_READS} reads; seconds)\n")
    out.append("The same bytes in a loop-mounted ext4 image with its large folios, in one mounted with `data=journal` "
               "(which turns ext4's large folios off; reads take the same path), and through SnapFS. Folios are counted "
               "from the mapped file's frames (/proc/self/pagemap, /proc/kpageflags).\n")
    first = median(next(iter(P["times"].values())))
    rows = []
    for name, ts in P["times"].items():
        heads, inlarge, single = P["folios"][name]
        rows.append([name, f"{heads:,}", f"{inlarge:,}", f"{single:,}", f"{median(ts):.3f} ({c['big'] / MIB / median(ts):,.0f} MiB/s)",
                     f"{first / median(ts):.2f}×"])
    out.extend(table(["file", "large folios", "pages in them", "single 4 KiB pages", "warm read", "vs ext4, large folios"], rows))
    out.append("")


SCALE_SYSTEMS = ["raw", "SnapFS", "fuse-overlayfs", "restic mount"]


def scale_verdict(med, limit=1.5):
    """(target, result) of the cold find at scale: SnapFS's time at most `limit` × raw's."""
    sn, raw = med.get("SnapFS"), med.get("raw")
    target = f"≤ {limit}× raw time"
    if sn is None or raw is None:
        return target, "—"
    return target, "PASS" if sn / raw <= limit else "MISS"


def scale_section(R, c, out, verdicts):
    if "scale" not in R:
        return
    S = R["scale"]
    out.append(f"### 6. Cold `find` of {S['entries']:,} entries (`--scale`; median of {S['runs']} runs; seconds)\n")
    out.append("`find -printf` (lstat of every entry) with `sync; echo 3 > /proc/sys/vm/drop_caches` before each run, round-robin "
               "over the systems; fuse-overlayfs mounts the raw directory as its lower layer, SnapFS serves a native-full snapshot "
               "of it and `restic mount` a `restic backup` of it. Ratio: peer time ÷ SnapFS time.\n")
    row = S["row"]
    med = row_medians(row)
    touts = row.get("timeouts", {})
    sn = med.get("SnapFS")
    cols = [s for s in SCALE_SYSTEMS]
    target, res = scale_verdict(med)
    if sn is not None:
        verdicts.append((row["title"], res))
    cells = [read_cell("find_cold", row, s, med, c) for s in cols]
    ratios = [speed_ratio(med.get(s), sn, s in touts, "SnapFS" in touts) for s in cols if s != "SnapFS"]
    out.extend(table(["measurement", *cols, *(f"vs {s}" if s != "raw" else "SnapFS vs raw" for s in cols if s != "SnapFS"), "target", "result"],
                     [[row["title"], *cells, *ratios, target, res]]))
    if S.get("setup"):
        out.append("\nSetup (once, not in the table): " + "; ".join(f"{k}: {v:.1f} s" for k, v in S["setup"].items()) + ".\n")


CLI_RSS_LIMIT = 200 * MIB


def cli_memory_section(R, c, out, verdicts):
    if "cli_memory" not in R:
        return
    M = R["cli_memory"]
    out.append(f"### 7. Memory of the CLI: one snapshot of {M['files']:,} files (`--sections cli-memory`; one run)\n")
    out.append("Peak RSS is GNU time's \"Maximum resident set size\" (`/usr/bin/time -v`). The store was filled by `snapfs "
               f"bench-populate` ({M['populate_s']:.0f} s; every file its own 16-byte object); the export went to a tmpfs, "
               "since each exported file is flushed with fsync.\n")
    rows = []
    for key, label in [("verify", "`snapfs verify`"), ("export", "`snapfs export`")]:
        if key not in M:
            continue
        rss, wall = M[key]
        res = "PASS" if rss < CLI_RSS_LIMIT else "MISS"
        verdicts.append((f"{label} of {M['files']:,} files, peak RSS", res))
        rows.append([label, mib(rss), f"{wall:.1f}", "< 200 MiB", res])
    out.extend(table(["command", "peak RSS (MiB)", "seconds", "target", "result"], rows))
    out.append("")
