"""Medians, ratios, verdicts and markdown tables: the arithmetic behind every row, pure so it can be unit-tested."""
import statistics

from .config import GIB, MIB


def median(xs):
    """The median of the figures, or None when there are none (a system that was not measured)."""
    return statistics.median(xs) if xs else None


def fmt_ratio(r):
    """A ratio with as many digits as it needs to say something: 2.50×, 0.012×, 3.4e-04×."""
    return f"{r:.2f}×" if r >= 0.095 else f"{r:.3f}×" if r >= 0.001 else f"{r:.1e}×"


def human(n):
    """Bytes in the largest binary unit that is at least 1: 1 GiB, 1.5 MiB, 4 KiB, 12 B."""
    for unit, size in [("GiB", GIB), ("MiB", MIB), ("KiB", 1024)]:
        if n >= size:
            v = n / size
            return f"{v:.0f} {unit}" if abs(v - round(v)) < 0.05 else f"{v:.1f} {unit}"
    return f"{n} B"


def speed_ratio(peer, snapfs, peer_stopped=False, snapfs_stopped=False):
    """The cell comparing SnapFS with one peer: peer time ÷ SnapFS time (above 1.0× SnapFS is faster). A system that
    was stopped at the cap has the cap as its time, a lower bound, so the ratio is a bound too: "> " when only the
    peer was stopped, "< " when only SnapFS was. "—" when either was not measured."""
    if not snapfs or not peer:
        return "—"
    bound = "< " if snapfs_stopped and not peer_stopped else ("> " if peer_stopped and not snapfs_stopped else "")
    return bound + fmt_ratio(peer / snapfs)


def row_medians(row):
    """{system: median seconds} of a read-path row; a system stopped at the cap counts the cap (a lower bound)."""
    med = {s: median(ts) for s, ts in row["times"].items()}
    for s, cap in row.get("timeouts", {}).items():
        med[s] = float(cap)
    return med


def read_verdict(key, med, stopped, c_peers):
    """(target, result) of a read-path row: SnapFS at least as fast as the fastest C FUSE peer; the warm sequential read
    also at least 0.8× raw's speed and the warm tar at most 3× raw's time. Result "—" when SnapFS was not measured,
    MISS when it was stopped at the cap or no C peer was measured."""
    sn = med.get("SnapFS")
    peer_meds = [med[p] for p in c_peers if med.get(p)]
    best = min(peer_meds) if peer_meds else None
    target = "≥ 1.0× best C FUSE peer"
    ok = sn is not None and "SnapFS" not in stopped and best is not None and best / sn >= 1.0
    if key == "seq_warm":
        target += "; ≥ 0.8× raw"
        ok = ok and med.get("raw") is not None and med["raw"] / sn >= 0.8
    if key == "tar_warm":
        target += "; ≤ 3× raw time"
        ok = ok and med.get("raw") is not None and sn / med["raw"] <= 3.0
    return target, "—" if sn is None else ("PASS" if ok else "MISS")


def flat_verdict(medians, tolerance=0.2):
    """(largest size ÷ smallest size, PASS or MISS) for a cost that must not grow with size: within ±tolerance."""
    ratio = medians[-1] / medians[0]
    return ratio, "PASS" if 1 - tolerance <= ratio <= 1 + tolerance else "MISS"


def table(header, rows):
    """A markdown table: the header cells, the separator, one line per row of cells."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in rows:
        if len(r) != len(header):
            raise ValueError(f"row of {len(r)} cells under a header of {len(header)}: {r}")
        lines.append("| " + " | ".join(str(x) for x in r) + " |")
    return lines
