import Foundation
import Logging
import SnapStore
import Synchronization

/// Keeps a mounted Flink store's catalog caught up with what Flink writes and removes on its own (new checkpoints,
/// subsumed ones), so the mount lists them within one interval, and keeps the JobManager's answer about every job
/// fresh, so that a kernel request never waits on REST: it uses the latest answer (see `FlinkClusterMonitor`).
/// The two run on separate threads, so a JobManager that hangs delays neither the catch-up nor any request.
/// Flink takes its checkpoints itself; this only looks.
public final class FlinkStoreWatcher: Sendable {
    public let engine: FlinkEngine
    public let interval: TimeInterval
    private let logger = Logger(label: "snapfs.flink.watcher")
    /// The last problem logged, so a store Flink is rewriting does not fill the log with the same line.
    private let lastProblem = Mutex<String?>(nil)
    private let tasks = Mutex<[PeriodicTask]>([])

    public init(engine: FlinkEngine, interval: TimeInterval = 2) {
        self.engine = engine
        self.interval = interval
    }

    public func start() {
        var started = [PeriodicTask(name: "snapfs-flink-watch", interval: interval, waitsFirst: false) { [weak self] in self?.catchUp() }]
        if let cluster = engine.hooks?.cluster, cluster.restURL != nil {
            started.append(PeriodicTask(name: "snapfs-flink-jobs", interval: interval, waitsFirst: false) { cluster.poll() })
        }
        tasks.withLock { $0 = started }
        for t in started { t.start() }
    }

    public func stop() { for t in tasks.withLock({ $0 }) { t.stop() } }

    private func catchUp() {
        do {
            let report = try engine.importer.refresh()
            lastProblem.withLock { $0 = nil }
            if !report.added.isEmpty || !report.forgotten.isEmpty {
                logger.info("store caught up", metadata: ["added": "\(report.added)", "forgotten": "\(report.forgotten)"])
            }
        } catch {
            let text = "\(error)"
            let repeated = lastProblem.withLock { last in defer { last = text }; return last == text }
            if !repeated { logger.warning("cannot catch up with the Flink store: \(text)") }
        }
    }
}
