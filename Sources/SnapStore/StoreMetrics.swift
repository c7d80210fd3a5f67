import CoreMetrics

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
    }
}
