import Foundation
import Logging
import SnapStore
import Synchronization

/// Keeps a mounted Flink store's catalog caught up with what Flink writes and removes on its own (new checkpoints,
/// subsumed ones), so the mount lists them within one interval. Flink takes its checkpoints itself; this only looks.
public final class FlinkStoreWatcher: Sendable {
    public let engine: FlinkEngine
    public let interval: TimeInterval
    private let stopped = Mutex(false)
    private let wake = NSCondition()
    private let logger = Logger(label: "snapfs.flink.watcher")

    public init(engine: FlinkEngine, interval: TimeInterval = 2) {
        self.engine = engine
        self.interval = interval
    }

    public func start() {
        let t = Thread { [self] in loop() }
        t.name = "snapfs-flink-watch"
        t.start()
    }

    public func stop() {
        stopped.withLock { $0 = true }
        wake.lock(); wake.broadcast(); wake.unlock()
    }

    private func loop() {
        var lastProblem: String?
        while !stopped.withLock({ $0 }) {
            do {
                let report = try engine.importer.refresh()
                lastProblem = nil
                if !report.added.isEmpty || !report.forgotten.isEmpty {
                    logger.info("store caught up", metadata: ["added": "\(report.added)", "forgotten": "\(report.forgotten)"])
                }
            } catch {
                // Logged once per distinct problem: a store Flink is rewriting can fail the same way for a while.
                let text = "\(error)"
                if text != lastProblem { logger.warning("cannot catch up with the Flink store: \(text)") }
                lastProblem = text
            }
            wake.lock()
            _ = wake.wait(until: Date().addingTimeInterval(interval))
            wake.unlock()
        }
    }
}
