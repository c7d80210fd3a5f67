import FlinkMetadata
import Foundation
import Logging
import SnapStore
import Synchronization

/// The facts the store's delete and move rules need, as Flink knows them.
///
/// A Flink store holds one directory per job ID, and every restart without HA, every upgrade and every restore
/// makes a new one, so every job in it has a recovery point of its own:
/// - with a JobManager configured and answering, every job it does not report as FINISHED, CANCELED or FAILED has
///   its recovery point protected: `latest.completed` from `GET /jobs/:id/checkpoints`, or a newer checkpoint already
///   complete on disk (Flink writes `_metadata` before it updates its statistics);
/// - a job the JobManager does not know (it ran before the JobManager last started), and every job when there is
///   no JobManager or it does not answer, has its newest complete checkpoint protected: refusing a delete that would
///   have been safe costs a retry, allowing one that was not costs the job's state;
/// - a job the JobManager reports ended loses that protection.
/// "Newest" is by checkpoint id, Flink's own counter: a copied store can give every `_metadata` the same mtime.
///
/// The JobManager is never asked here: these answers are needed inside kernel requests and on every catalog change.
/// `cluster` keeps its latest answer, refreshed by a command when it opens the store and by a mount on a timer.
///
/// Why protecting the recovery point is enough while a job keeps checkpointing: RocksDB's files are immutable and
/// never return to the live set once compacted away, so any file a future incremental checkpoint can reuse is live
/// now and therefore named by the newest completed checkpoint. If that checkpoint completed after the last refresh,
/// it is not in the catalog yet, and the newest known snapshot of the job is protected instead; `refresh` runs
/// right before every delete to keep that window small.
public struct FlinkHooks: EngineHooks {
    public let settings: FlinkStoreSettings
    public let cluster: FlinkClusterMonitor
    let logger: Logger

    public init(settings: FlinkStoreSettings, cluster: FlinkClusterMonitor? = nil, logger: Logger = Logger(label: "snapfs.flink")) {
        self.settings = settings
        self.cluster = cluster ?? FlinkClusterMonitor(restURL: settings.restURL, logger: logger)
        self.logger = logger
    }

    /// Catches the catalog up with Flink before a delete or move decides anything: a file is only safe if every
    /// snapshot that needs it is known, including a checkpoint Flink completed a moment ago.
    public func refresh(_ store: Store) throws(StoreError) {
        try FlinkImporter(store: store, settings: settings, logger: logger).refresh()
    }

    /// Flink numbers a job's checkpoints and savepoints from one counter, so the highest id is the newest; neither
    /// the catalog's order nor file times are.
    static func newest(_ snapshots: [Snapshot]) -> Snapshot? {
        snapshots.max { (Int64($0.externalID ?? "") ?? -1, $0.id) < (Int64($1.externalID ?? "") ?? -1, $1.id) }
    }

    static func checkpointID(_ s: Snapshot) -> Int64 { Int64(s.externalID ?? "") ?? -1 }

    public func jobStatus(of store: Store) -> JobStatus {
        let all = (try? store.snapshots()) ?? []
        var byJob: [String: [Snapshot]] = [:]
        for s in all { if let j = s.job { byJob[j, default: []].append(s) } }
        if let j = settings.jobID, byJob[j] == nil { byJob[j] = [] }
        let view = cluster.view()
        var jobs: [JobRecovery] = []
        for (job, mine) in byJob.sorted(by: { $0.key < $1.key }) {
            jobs.append(recovery(of: job, mine, all: all, view: view, store: store))
        }
        let protected = jobs.filter(\.protected)
        // The mount's `latest` and `status`'s headline: the configured job's recovery point, else the newest one.
        let primary: String?
        if let j = settings.jobID {
            primary = jobs.first { $0.job == j }?.recoveryPoint
        } else {
            let points = protected.compactMap { r in r.recoveryPoint.flatMap { n in all.first { $0.name == n } } }
            primary = points.max { ($0.completedAt ?? 0, $0.id) < ($1.completedAt ?? 0, $1.id) }?.name
        }
        let detail: String
        switch view {
        case .none: detail = "no Flink REST address configured: every job's newest checkpoint is protected"
        case .unknown(let why): detail = "\(why); every job's newest checkpoint is protected"
        case .answered: detail = "\(jobs.count) jobs, \(protected.count) with a protected recovery point (from the JobManager at \(settings.restURL ?? "-"))"
        }
        return JobStatus(running: !protected.isEmpty, recoveryPoint: primary, detail: detail, jobs: jobs)
    }

    /// One job's recovery point under the rules above.
    private func recovery(of job: String, _ mine: [Snapshot], all: [Snapshot], view: FlinkClusterMonitor.View, store: Store) -> JobRecovery {
        let newest = Self.newest(mine)
        let newestCheckpoint = Self.newest(mine.filter { $0.kind == .checkpoint }) ?? newest
        func fallback(_ state: String, _ why: String) -> JobRecovery {
            JobRecovery(job: job, state: state, protected: true, recoveryPoint: newestCheckpoint?.name, newest: newest?.name,
                        detail: "\(why): its newest checkpoint is protected")
        }
        let info: ClusterAnswer.Job
        switch view {
        case .none: return fallback("UNKNOWN", "no JobManager configured")
        case .unknown(let why): return fallback("UNKNOWN", why)
        case .answered(let answer):
            guard let known = answer.jobs[job] else {
                return fallback("UNKNOWN", "the JobManager does not know this job (it ran before the JobManager last started, or on another cluster)")
            }
            info = known
        }
        if ClusterAnswer.terminalStates.contains(info.state) {
            return JobRecovery(job: job, state: info.state, protected: false, recoveryPoint: nil, newest: newest?.name,
                               detail: "the JobManager reports it \(info.state): nothing of it is protected"
                                   + (newest.map { "; \($0.name) is the last snapshot it can be restored from" } ?? ""))
        }
        guard let stats = info.checkpoints else {
            return fallback(info.state, "its checkpoint statistics are unreadable (\(info.checkpointsUnreadable ?? "no answer"))")
        }
        var point = newestCheckpoint
        var detail: String
        if let latest = stats.latest, !latest.isSavepoint {
            detail = "latest completed checkpoint \(latest.id)"
            if let match = snapshot(at: latest.externalPath, in: all, store: store) {
                point = match
            } else {
                detail += " (not in the catalog yet: its newest checkpoint is protected)"
            }
            // Flink writes `_metadata`, adds the checkpoint to the store it recovers from, and only then updates its
            // statistics; a checkpoint already on disk with a higher id is what the job would restart from.
            let ahead = mine.filter { $0.kind == .checkpoint && Self.checkpointID($0) > latest.id }
            if let newer = Self.newest(ahead) {
                point = newer
                detail += "; \(newer.name) is complete on disk but not yet in Flink's statistics"
            }
        } else if let latest = stats.latest {
            // A savepoint is not what a failover restarts from: the job's newest checkpoint stays protected.
            detail = "latest completed is savepoint \(latest.id); its newest checkpoint is protected"
        } else if let restored = snapshot(at: stats.restoredPath, in: all, store: store) {
            // No checkpoint of its own yet: it would restart from what it was started from, maybe another job's.
            point = restored
            detail = "no checkpoint completed yet; restored from \(restored.name)"
        } else {
            detail = "no checkpoint completed yet" + (point == nil ? "" : "; its newest checkpoint is protected")
        }
        return JobRecovery(job: job, state: info.state, protected: true, recoveryPoint: point?.name, newest: newest?.name,
                           detail: "the JobManager reports it \(info.state), \(detail)")
    }

    /// The snapshot whose directory Flink names by `location`, if it is in the catalog.
    private func snapshot(at location: String?, in all: [Snapshot], store: Store) -> Snapshot? {
        guard let location, let dir = FlinkPaths.storeRelative(location, store: store, settings: settings) else { return nil }
        return all.first { $0.directory == dir }
    }

    /// When Flink's checkpoint history says the checkpoint was triggered and completed, while the JobManager answers;
    /// otherwise the store's record (the `_metadata` mtime) stands.
    public func reportedTimes(job: String?, externalID: String?) -> SnapshotTimes? {
        guard let job, let id = externalID.flatMap({ Int64($0) }), case .answered(let answer) = cluster.view(),
              let t = answer.jobs[job]?.checkpoints?.times[id] else { return nil }
        return SnapshotTimes(created: t.triggered, completed: t.completed ?? t.triggered)
    }

    /// Moves with every change in the JobManager's answer that the rules above read (see `viewGeneration`).
    public func statusGeneration() -> Int64 { cluster.viewGeneration() }

    /// A snapshot may move only if it is relocatable: a savepoint that names every file relative to its own
    /// directory and shares none of them with another snapshot. Checkpoints name shared files by absolute path and
    /// are Flink's to subsume, and a savepoint a job claimed is read through absolute paths by that job.
    public func checkMove(_ snapshot: Snapshot, to newName: String, in store: Store) throws(StoreError) {
        guard snapshot.engine == FlinkStoreSettings.engineName else { return }
        if snapshot.kind == .checkpoint {
            throw .notPermitted("\(snapshot.name) is a Flink checkpoint: Flink owns it, names its files by absolute path and subsumes it by its directory; it cannot be moved. `snapfs convert \(snapshot.name) --to self-contained` makes a savepoint of it that can be moved")
        }
        guard let dir = snapshot.directory else { return }
        let importer = FlinkImporter(store: store, settings: settings, logger: logger)
        let (metadata, _, _) = try importer.readMetadata(dir)
        var absolute: [String] = []
        metadata.visitHandles { handle in
            switch handle {
            case .file(let path, _): absolute.append(path)
            case .fileSegment(let s): absolute.append(s.physicalPath)
            default: break
            }
        }
        if !absolute.isEmpty {
            throw .notPermitted("\(snapshot.name) is not relocatable: its _metadata names \(absolute.count) files by absolute path (e.g. \(absolute[0]))")
        }
        let shared = try store.entries(of: snapshot.id).filter { $0.type == .file && $0.links > 1 }
        if let first = shared.first {
            throw .notPermitted("\(snapshot.name) is not relocatable now: \(shared.count) of its files are also needed by other snapshots (e.g. \(first.path), after a CLAIM restore)")
        }
    }
}

extension FlinkHooks {
    /// A relocatable Flink snapshot (`checkMove` passed: every handle relative, no file shared) moves with its
    /// directory: `<parent>/<old directory>` becomes `<parent>/<new name>`, so Flink restores it from the path its
    /// name says. Refused when a file it needs lies outside its directory, or the new directory exists.
    public func relocation(_ snapshot: Snapshot, to newName: String, in store: Store) throws(StoreError) -> String? {
        guard snapshot.engine == FlinkStoreSettings.engineName, let directory = snapshot.directory else { return nil }
        let outside = try store.entries(of: snapshot.id, includeHidden: true).filter {
            ($0.type == .file && !$0.path.hasPrefix(directory + "/")) || ($0.type == .symlink && $0.hidden)
        }
        if let first = outside.first {
            throw .notPermitted("\(snapshot.name) is not relocatable: \(outside.count) of the files it needs are outside its directory \(directory) (e.g. \(first.symlinkTarget ?? first.path))")
        }
        let target = PathBytes.parent(directory).map { $0 + "/" + newName } ?? newName
        if target == directory { return nil }  // its directory already has the name: the catalog alone changes
        var st = stat()
        if lstat(store.root.path + "/" + target, &st) == 0 {
            throw .badInput("\(snapshot.name) cannot be moved to \(newName): \(target) already exists on disk")
        }
        return target
    }
}

/// Path translation between what Flink wrote and where the store is now.
enum FlinkPaths {
    /// A Flink location (`file:/srv/flink-store/savepoints/savepoint-…`) as a store-relative path, if it lies inside.
    static func storeRelative(_ location: String, store: Store, settings: FlinkStoreSettings) -> String? {
        let local = settings.metadataPathMap.map(location)
        guard let rel = PathBytes.relative(local, under: store.root.path) else { return nil }
        return Store.isSafeRelativePath(rel) ? rel : nil
    }

    /// A local path as Flink sees it: the path map applied backwards, as a `file://` URI.
    static func flinkLocation(ofLocal path: String, settings: FlinkStoreSettings) -> String {
        for rule in settings.pathMap.sorted(by: { $0.to.count > $1.to.count }) {
            let to = PathMap.identity.map(rule.to), from = PathMap.identity.map(rule.from)
            if path.utf8.elementsEqual(to.utf8) { return "file://" + from }
            if let rel = PathBytes.relative(path, under: to) { return "file://" + (from.hasSuffix("/") ? from : from + "/") + rel }
        }
        return "file://" + path
    }
}

/// The rules of Flink stores, for `Store.open(at:rules:)` and `Store.create(…, rules:)`: the hooks above with the
/// store's settings, and one look at the JobManager (if one is configured) so that a command starts from a fresh
/// answer. A mount keeps the answer fresh with `FlinkStoreWatcher`.
public struct FlinkRules: EngineRules {
    public var engine: String { FlinkStoreSettings.engineName }
    let logger: Logger
    /// Seconds each REST call may take.
    let restTimeout: Double
    /// Seconds a JobManager's answer stays usable.
    let answerMaximumAge: Double
    /// Whether to ask the JobManager while opening (a command does; a test of the fallback need not).
    let askAtOpen: Bool

    public init(logger: Logger = Logger(label: "snapfs.flink"), restTimeout: Double = 3, answerMaximumAge: Double = 30, askAtOpen: Bool = true) {
        self.logger = logger
        self.restTimeout = restTimeout
        self.answerMaximumAge = answerMaximumAge
        self.askAtOpen = askAtOpen
    }

    public func hooks(for store: Store) throws(StoreError) -> any EngineHooks {
        let settings = try FlinkStoreSettings.load(from: store)
        let cluster = FlinkClusterMonitor(restURL: settings.restURL, timeout: restTimeout, maximumAge: answerMaximumAge, logger: logger)
        if askAtOpen { cluster.poll() }
        return FlinkHooks(settings: settings, cluster: cluster, logger: logger)
    }
}
