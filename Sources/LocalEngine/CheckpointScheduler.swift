import Foundation
import Logging
import SnapStore
import Synchronization

/// Takes system checkpoints on an interval and then applies retention, as a job's checkpoint coordinator would.
/// A failed checkpoint is logged and recorded; the next interval tries again.
public final class CheckpointScheduler: Sendable {
    public let engine: any SnapshotEngine
    public let store: Store
    public let interval: TimeInterval
    public let retain: Int
    public let format: SnapshotFormat
    private let logger = Logger(label: "snapfs.scheduler")
    private let task = Mutex<PeriodicTask?>(nil)

    public init(store: Store, engine: any SnapshotEngine, interval: TimeInterval, retain: Int, format: SnapshotFormat = .nativeIncremental) {
        self.store = store; self.engine = engine; self.interval = interval; self.retain = retain; self.format = format
    }

    public func start() {
        let t = PeriodicTask(name: "snapfs-checkpoints", interval: interval, waitsFirst: true) { [weak self] in self?.checkpointOnce() }
        task.withLock { $0 = t }
        t.start()
    }

    /// Returns once a checkpoint in progress has finished.
    public func stop() { task.withLock { $0 }?.stop() }

    /// One checkpoint and the retention that follows it.
    @discardableResult
    public func checkpointOnce() -> Snapshot? {
        do {
            let s = try engine.takeSnapshot(format: format, kind: .checkpoint, label: nil, progress: nil)
            StoreMetrics.tookSnapshot(source: "scheduler")
            let removed = store.applyRetention(keep: retain)
            logger.info("checkpoint \(s.name) complete; retention removed \(removed.count)")
            return s
        } catch {
            logger.error("checkpoint failed: \(error)")
            store.recordEvent("checkpoint-failed", snapshot: nil, "\(error)")
            return nil
        }
    }
}
