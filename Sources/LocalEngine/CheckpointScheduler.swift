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
    private let stopped = Mutex(false)
    private let wake = NSCondition()
    private let logger = Logger(label: "snapfs.scheduler")

    public init(store: Store, engine: any SnapshotEngine, interval: TimeInterval, retain: Int, format: SnapshotFormat = .nativeIncremental) {
        self.store = store; self.engine = engine; self.interval = interval; self.retain = retain; self.format = format
    }

    public func start() {
        let t = Thread { [self] in loop() }
        t.name = "snapfs-checkpoints"
        t.start()
    }

    public func stop() {
        stopped.withLock { $0 = true }
        wake.lock(); wake.broadcast(); wake.unlock()
    }

    private func loop() {
        while true {
            wake.lock()
            _ = wake.wait(until: Date().addingTimeInterval(interval))
            wake.unlock()
            if stopped.withLock({ $0 }) { return }
            checkpointOnce()
        }
    }

    /// One checkpoint and the retention that follows it.
    @discardableResult
    public func checkpointOnce() -> Snapshot? {
        do {
            let s = try engine.takeSnapshot(format: format, kind: .checkpoint, label: nil, progress: nil)
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
