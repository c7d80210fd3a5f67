import CoreMetrics
#if canImport(Glibc)
import Glibc
#endif

/// What the store counts, through swift-metrics: nothing is recorded anywhere until a process bootstraps a metrics
/// backend (`snapfs serve` and `snapfs mount --listen` bootstrap Prometheus and serve it at `/metrics`). The names are
/// documented in the README; every interface that reaches the store (CLI, mount, REST) is counted the same way,
/// because the counting happens here and not in the interfaces.
public enum StoreMetrics {
    /// `snapfs_snapshots_taken_total{source}`: snapshots taken on request (`source`: cli, mount, rest), by the
    /// checkpoint scheduler (`scheduler`), or by a job intent's stop-with-savepoint (`intent`).
    public static let snapshotsTaken = "snapfs_snapshots_taken_total"
    /// `snapfs_snapshots_deleted_total{reason}`: snapshots deleted through the checked path (`reason`: user or retention).
    public static let snapshotsDeleted = "snapfs_snapshots_deleted_total"
    /// `snapfs_bytes_freed_total`: bytes of objects a delete removed because no other snapshot referenced them.
    public static let bytesFreed = "snapfs_bytes_freed_total"

    /// `snapfs_refusals_total{errno}`: operations refused, by the errno the caller saw, whichever interface refused
    /// them (the mount's file operations and the REST API; the command line's are its exit codes).
    public static let refusals = "snapfs_refusals_total"

    public static func refused(errno: Int32) {
        Counter(label: refusals, dimensions: [("errno", errnoSymbol(errno))]).increment()
    }

    /// The errno's symbol, as the metric's label and the REST body's `errno` give it.
    public static func errnoSymbol(_ e: Int32) -> String {
        let names: [Int32: String] = [ENOENT: "ENOENT", EEXIST: "EEXIST", EINVAL: "EINVAL", EBUSY: "EBUSY", EPERM: "EPERM",
                                      EACCES: "EACCES", EIO: "EIO", ENOSPC: "ENOSPC", EDQUOT: "EDQUOT", EROFS: "EROFS",
                                      ENOMEM: "ENOMEM", ENOTEMPTY: "ENOTEMPTY", EXDEV: "EXDEV", ENOTDIR: "ENOTDIR", EISDIR: "EISDIR"]
        return names[e] ?? "E\(e)"
    }

    /// `source` as `requestSnapshot` takes it; the mount's several sources (trigger files, mkdir) count as `mount`, so
    /// the label keeps a handful of values.
    public static func tookSnapshot(source: String) {
        let known = ["cli", "rest", "scheduler", "intent"].contains(source) ? source : "mount"
        Counter(label: snapshotsTaken, dimensions: [("source", known)]).increment()
    }

    /// One count per snapshot a delete removed; prune counts as retention, as the scheduler's does.
    static func deleted(_ plan: DeletePlan, reason: String) {
        guard !plan.snapshots.isEmpty else { return }
        let kind = reason == "retention" || reason == "prune" ? "retention" : "user"
        Counter(label: snapshotsDeleted, dimensions: [("reason", kind)]).increment(by: plan.snapshots.count)
        Counter(label: bytesFreed).increment(by: plan.catalogBytes)
    }

    /// Creates the counters at zero, so a scrape before anything happened already lists them.
    public static func register() {
        for s in ["cli", "mount", "rest", "scheduler", "intent"] { Counter(label: snapshotsTaken, dimensions: [("source", s)]).increment(by: 0) }
        for r in ["user", "retention"] { Counter(label: snapshotsDeleted, dimensions: [("reason", r)]).increment(by: 0) }
        Counter(label: bytesFreed).increment(by: 0)
        for e in [ENOENT, EEXIST, EINVAL, EBUSY, EPERM, EIO, ENOSPC, EROFS] {
            Counter(label: refusals, dimensions: [("errno", errnoSymbol(e))]).increment(by: 0)
        }
    }
}
