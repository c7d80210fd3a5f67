import Foundation
import Logging
import SnapStore
import Synchronization

/// Keeps a mounted Flink store's catalog caught up with what Flink writes and removes on its own (new checkpoints,
/// subsumed ones), so the mount lists them promptly, and keeps the JobManager's answer about every job fresh, so
/// that a kernel request never waits on REST: it uses the latest answer (see `FlinkClusterMonitor`).
/// The two run on separate threads, so a JobManager that hangs delays neither the catch-up nor any request.
/// Flink takes its checkpoints itself; this only looks.
///
/// Where the file system has inotify, a change to the directories that hold snapshots (a new job or `chk-N`, a
/// `_metadata` written last, a subsumed checkpoint removed) starts a pass at once, and the periodic pass runs only
/// every `safetyInterval` as a backstop. Elsewhere (a network or FUSE file system, whose remote changes raise no
/// event, no inotify, or `SNAPFS_FLINK_WATCH=poll`) the pass runs every `interval`. A pass with nothing new costs a
/// few `stat`s (see `FlinkScanCache`), since the watcher keeps one importer.
public final class FlinkStoreWatcher: Sendable {
    /// How a watcher learns of new snapshots.
    public enum Mode: String, Sendable {
        /// inotify where the store's file system has it, else polling.
        case automatic
        /// Polling every `interval` only.
        case polling

        /// `SNAPFS_FLINK_WATCH=poll` forces polling; anything else (or nothing) is automatic.
        public static var fromEnvironment: Mode {
            ProcessInfo.processInfo.environment["SNAPFS_FLINK_WATCH"] == "poll" ? .polling : .automatic
        }
    }

    public let engine: FlinkEngine
    public let interval: TimeInterval
    public let safetyInterval: TimeInterval
    public let mode: Mode
    /// The importer every pass uses, so passes share what the last walk saw.
    public let importer: FlinkImporter
    private let logger = Logger(label: "snapfs.flink.watcher")
    /// The last problem logged, so a store Flink is rewriting does not fill the log with the same line.
    private let lastProblem = Mutex<String?>(nil)
    private let tasks = Mutex<[PeriodicTask]>([])
    private let events = Mutex<DirectoryEvents?>(nil)
    private let stopped = Atomic<Bool>(false)
    private let eventThreadRunning = Mutex(false)
    private let eventThreadDone = NSCondition()

    public init(engine: FlinkEngine, interval: TimeInterval = 2, safetyInterval: TimeInterval = 30, mode: Mode = .fromEnvironment) {
        self.engine = engine
        self.interval = interval
        self.safetyInterval = max(interval, safetyInterval)
        self.mode = mode
        self.importer = engine.importer
    }

    /// Whether new snapshots are noticed through inotify (false: polling every `interval`).
    public var usesInotify: Bool { events.withLock { $0 != nil } }

    public func start() {
        var watcher: DirectoryEvents?
        if mode == .automatic {
            switch DirectoryEvents.open(root: engine.store.root.path) {
            case .success(let e): watcher = e
            case .failure(let why): logger.notice("watching the Flink store by polling every \(interval) s: \(why.reason)")
            }
        } else {
            logger.notice("watching the Flink store by polling every \(interval) s (SNAPFS_FLINK_WATCH=poll)")
        }
        events.withLock { $0 = watcher }
        let pass = PeriodicTask(name: "snapfs-flink-watch", interval: watcher == nil ? interval : safetyInterval, waitsFirst: false) { [weak self] in
            self?.catchUp()
        }
        var started = [pass]
        if let cluster = engine.hooks?.cluster, cluster.restURL != nil {
            started.append(PeriodicTask(name: "snapfs-flink-jobs", interval: interval, waitsFirst: false) { cluster.poll() })
        }
        tasks.withLock { $0 = started }
        for t in started { t.start() }
        if let watcher {
            eventThreadRunning.withLock { $0 = true }
            let t = Thread { [self] in
                while !stopped.load(ordering: .relaxed) {
                    if watcher.wait(timeout: 0.25) { pass.wakeNow() }
                }
                eventThreadRunning.withLock { $0 = false }
                eventThreadDone.lock(); eventThreadDone.broadcast(); eventThreadDone.unlock()
            }
            t.name = "snapfs-flink-events"
            t.start()
        }
    }

    public func stop() {
        stopped.store(true, ordering: .relaxed)
        for t in tasks.withLock({ $0 }) { t.stop() }
        eventThreadDone.lock()
        while eventThreadRunning.withLock({ $0 }) { _ = eventThreadDone.wait(until: Date().addingTimeInterval(0.1)) }
        eventThreadDone.unlock()
        events.withLock { $0 = nil }
    }

    private func catchUp() {
        do {
            let report = try importer.refresh()
            lastProblem.withLock { $0 = nil }
            if !report.added.isEmpty || !report.forgotten.isEmpty {
                logger.info("store caught up", metadata: ["added": "\(report.added)", "forgotten": "\(report.forgotten)"])
            }
        } catch {
            let text = "\(error)"
            let repeated = lastProblem.withLock { last in defer { last = text }; return last == text }
            if !repeated { logger.warning("cannot catch up with the Flink store: \(text)") }
        }
        // Directories that appeared since (a new job, a `chk-N` being written) are watched from now on; one that is
        // new may have changed before its watch began, so look once more.
        if let watcher = events.withLock({ $0 }), watcher.watch(importer.scanCache.watchedDirectories) {
            tasks.withLock { $0.first }?.wakeNow()
        }
    }
}
