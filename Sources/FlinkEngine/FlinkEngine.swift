import FlinkMetadata
import Foundation
import Logging
import SnapStore
import Synchronization

/// The Flink engine: snapshots are a Flink job's checkpoints and savepoints, triggered through its REST API and
/// recorded from the `_metadata` Flink writes.
///
/// How the three formats map (also in the format matrix):
/// - `canonical` → a CANONICAL savepoint.
/// - `native-full` → for a user-induced snapshot, a NATIVE savepoint; for a system checkpoint, a FULL checkpoint.
///   A FULL checkpoint is subject to Flink's own retention (`num-retained`) and would vanish when Flink subsumes
///   it, which a user-induced snapshot must never do; savepoints are never subsumed.
/// - `native-incremental` → Flink's incremental checkpoints, taken on the job's interval. Flink refuses to trigger
///   one explicitly (FLINK-33723), so such a request fails with that reason.
/// - `default` → the store's configured format (`canonical` unless `snapfs init --default-format` says otherwise),
///   matching Flink's own default savepoint format.
public final class FlinkEngine: SnapshotEngine {
    public let store: Store
    public let settings: FlinkStoreSettings
    public var name: String { FlinkStoreSettings.engineName }
    public var defaultFormat: SnapshotFormat { settings.defaultFormat }
    /// A Flink store holds a directory per job id (every restart without HA, upgrade and restore makes one).
    public var groupsSnapshotsByJob: Bool { true }
    let logger: Logger
    /// One trigger at a time per process: Flink runs one savepoint per job at a time anyway.
    private let serial = Mutex(())
    /// Seconds between status polls of a triggered snapshot.
    let pollInterval: Double

    public init(store: Store, settings: FlinkStoreSettings, logger: Logger = Logger(label: "snapfs.flink"), pollInterval: Double = 0.5) {
        self.store = store
        self.settings = settings
        self.logger = logger
        self.pollInterval = pollInterval
    }

    /// The engine of a Flink store opened with `FlinkRules`, sharing the rules bound to it (and their view of the
    /// cluster).
    public static func forStore(_ store: Store, logger: Logger = Logger(label: "snapfs.flink")) throws(StoreError) -> FlinkEngine {
        guard let hooks = store.hooks as? FlinkHooks else {
            throw .badInput("the store at \(store.root.path) uses engine '\(store.engineName)', not flink")
        }
        return FlinkEngine(store: store, settings: hooks.settings, logger: logger)
    }

    /// The rules bound to this engine's store, with the JobManager's latest answer.
    public var hooks: FlinkHooks? { store.hooks as? FlinkHooks }

    /// Opens a Flink store with its rules bound: the one way the engine layer opens a store.
    public static func openStore(at root: URL, rules: FlinkRules = FlinkRules()) throws(StoreError) -> Store {
        try Store.open(at: root, rules: [rules])
    }

    public var importer: FlinkImporter { FlinkImporter(store: store, settings: settings, logger: logger) }

    public func takeSnapshot(format: SnapshotFormat, kind: SnapshotKind, label: String?, progress: ProgressHandler?) throws(StoreError) -> Snapshot {
        try serial.withLock { _ throws(StoreError) -> Snapshot in
            if format == .nativeIncremental {
                throw .snapshotFailed("Flink does not support triggering incremental checkpoints explicitly (FLINK-33723); the job takes them on its checkpoint interval and they appear here as checkpoints")
            }
            guard let job = settings.jobID, let rest = settings.restURL else {
                throw .badInput("this Flink store has no job or REST address to trigger through: create it with `snapfs init --engine flink --rest URL --job ID`")
            }
            if let label, (try? store.snapshot(named: label)) != nil { throw .alreadyExists(label) }
            let api = try FlinkREST(baseURL: rest)
            switch (format, kind) {
            case (.canonical, _), (.nativeFull, .user):
                let formatType = format == .canonical ? "CANONICAL" : "NATIVE"
                let target = FlinkPaths.flinkLocation(ofLocal: store.root.path + "/" + settings.savepointDirectory, settings: settings)
                let request = try api.triggerSavepoint(job, formatType: formatType, targetDirectory: target)
                logger.info("savepoint triggered", metadata: ["job": .string(job), "format": .string(formatType), "request": .string(request)])
                let location = try poll("\(formatType) savepoint", progress: progress) { () throws(StoreError) in
                    try api.savepointStatus(job, request: request)
                }
                guard let dir = FlinkPaths.storeRelative(location, store: store, settings: settings) else {
                    throw .snapshotFailed("Flink wrote the savepoint outside the store, at \(location); check the path map")
                }
                let s = try importer.recordDirectory(dir, name: label)
                try importer.refresh()
                return s
            case (.nativeFull, .checkpoint):
                let request = try api.triggerCheckpoint(job, checkpointType: "FULL")
                let id = try poll("FULL checkpoint", progress: progress) { () throws(StoreError) in
                    try api.checkpointStatus(job, request: request)
                }
                guard let dir = importer.scan().first(where: { $0.hasSuffix("\(job)/chk-\(id)") }) else {
                    throw .snapshotFailed("Flink completed checkpoint \(id) but its directory is not in the store (already subsumed, or written elsewhere)")
                }
                let s = try importer.recordDirectory(dir, name: label)
                try importer.refresh()
                return s
            case (.nativeIncremental, _):
                throw .snapshotFailed("unreachable: incremental checkpoints are refused above")
            }
        }
    }

    /// Removes files no snapshot needs, as `Store.gc` does, but only when every snapshot directory decodes: the
    /// files of a snapshot whose `_metadata` cannot be read are unknown, so any unreferenced file might be one of
    /// them. Such a snapshot must be repaired or deleted by hand first.
    ///
    /// Orphans are what Flink leaves behind: files of expired or aborted checkpoints (a `chk-N` with no `_metadata`)
    /// and shared or file-merging files no snapshot names. A `chk-N` goes only once nothing in it changed for
    /// `grace`: Flink writes `_metadata` last, after every task filled the directory, so a young one may still
    /// become a snapshot. A file-merging managed directory (`shared/job_…`, `taskowned/job_…`) is treated alike:
    /// a running job keeps physical files open there and appends the next checkpoint's segments to one that no
    /// snapshot names yet, so its files go only once the whole directory has been idle for `grace`.
    public func gc(grace: TimeInterval) throws(StoreError) -> GCReport {
        let report = try importer.refresh(full: true)
        if let first = report.unreadable.first {
            throw .busy(snapshot: first.directory, reason: "its _metadata cannot be read (\(first.error)), so the files it needs are unknown; gc removes nothing until it is repaired or removed (\(report.unreadable.count) such directories)")
        }
        return try store.gc(grace: grace, writtenTogether: Self.writerDirectory(of:))
    }

    /// The directory a writer fills as one unit that a store-relative file lies in, if any: its `chk-N`, or its
    /// file-merging managed directory.
    static func writerDirectory(of path: String) -> String? {
        let parts = PathBytes.components(path).dropLast()
        if let index = parts.lastIndex(where: { FlinkImporter.checkpointNumber($0) != nil }) {
            return parts[...index].joined(separator: "/")
        }
        if let index = parts.indices.dropFirst().last(where: {
            parts[$0].hasPrefix("job_") && FlinkImporter.fileDirectories.contains(parts[$0 - 1])
        }) {
            return parts[...index].joined(separator: "/")
        }
        return nil
    }

    /// Polls until Flink reports the operation done, failed, or the store's trigger timeout passes.
    private func poll<T: Sendable>(_ what: String, progress: ProgressHandler?,
                                   _ status: () throws(StoreError) -> FlinkREST.Outcome<T>) throws(StoreError) -> T {
        try FlinkREST.awaitOutcome(what, timeout: settings.triggerTimeout, interval: pollInterval,
                                   lateNote: "Flink may still finish it; it would then appear on the next refresh",
                                   progress: progress, status)
    }
}
