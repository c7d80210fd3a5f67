import FlinkMetadata
import Foundation
import Logging
import SnapStore
import Synchronization

/// The facts the store's delete and move rules need, as Flink knows them.
///
/// The recovery point is what the running job would restart from, so it comes from the job itself
/// (`GET /jobs/:id/checkpoints`, `latest.completed`) whenever the JobManager answers. When it does not, the job
/// may well still be running, so the newest complete snapshot of the job is protected instead: refusing a delete
/// that would have been safe costs a retry, allowing one that was not costs the job's state.
///
/// Why protecting the recovery point is enough while the job keeps checkpointing: RocksDB's files are immutable
/// and never return to the live set once compacted away, so any file a future incremental checkpoint can reuse is
/// live now and therefore named by the newest completed checkpoint. If that checkpoint completed after the last
/// refresh, it is not in the catalog yet, and the newest known snapshot of the job is protected instead (see
/// `jobStatus`); `refresh` runs right before every delete to keep that window small.
public struct FlinkHooks: EngineHooks {
    public let settings: FlinkStoreSettings
    let logger: Logger
    /// Seconds to wait for the JobManager before falling back; a delete should not hang on a dead cluster.
    let restTimeout: Double
    /// Seconds after the JobManager failed to answer during which the status goes straight to the fallback. A
    /// mount asks for the status on every catalog change; without this, a JobManager that hangs would cost each of
    /// them the whole timeout. Only the failure is remembered: the fallback is the most protective answer, and an
    /// answer Flink did give is never reused.
    let retryAfter: Double
    private let outage = RESTOutage()

    public init(settings: FlinkStoreSettings, logger: Logger = Logger(label: "snapfs.flink"), restTimeout: Double = 3,
                retryAfter: Double = 5) {
        self.settings = settings
        self.logger = logger
        self.restTimeout = restTimeout
        self.retryAfter = retryAfter
    }

    /// Catches the catalog up with Flink before a delete or move decides anything: a file is only safe if every
    /// snapshot that needs it is known, including a checkpoint Flink completed a moment ago.
    public func refresh(_ store: Store) throws(StoreError) {
        try FlinkImporter(store: store, settings: settings, logger: logger).refresh()
    }

    public func jobStatus(of store: Store) -> JobStatus {
        let all = (try? store.snapshots()) ?? []
        guard let job = settings.jobID else {
            let running = (try? store.meta(FlinkStoreSettings.Key.jobState)) == "running"
            return JobStatus(running: running, recoveryPoint: all.last?.name,
                             detail: "no Flink job configured: the store's newest snapshot stands for the recovery point")
        }
        // Flink numbers a job's checkpoints and savepoints from one counter, so the highest id is the newest; the
        // catalog's own order only reflects when snapshots were found.
        let newest = all.filter { $0.job == job }.max { (Int64($0.externalID ?? "") ?? -1, $0.id) < (Int64($1.externalID ?? "") ?? -1, $1.id) }?.name
        guard let rest = settings.restURL else {
            let stopped = (try? store.meta(FlinkStoreSettings.Key.jobState)) == "stopped"
            return JobStatus(running: !stopped, recoveryPoint: newest,
                             detail: "no Flink REST address configured: protecting job \(job)'s newest snapshot")
        }
        let unreachable = { (why: String) in
            JobStatus(running: true, recoveryPoint: newest,
                      detail: "Flink REST unreachable (\(why)); assuming job \(job) runs and protecting its newest snapshot")
        }
        if let why = outage.current(now: Date()) { return unreachable(why) }
        do {
            let api = try FlinkREST(baseURL: rest, timeout: restTimeout)
            guard let state = try api.jobState(job) else {
                return JobStatus(running: false, recoveryPoint: newest, detail: "job \(job) is unknown to the cluster at \(rest)")
            }
            let running = !["CANCELED", "FINISHED", "FAILED"].contains(state)
            var point = newest
            var detail = "Flink job \(state)"
            if let latest = try api.latestCompleted(job) {
                detail += ", latest completed checkpoint \(latest.id)"
                if let path = latest.externalPath, let dir = FlinkPaths.storeRelative(path, store: store, settings: settings),
                   let match = all.first(where: { $0.directory == dir }) {
                    point = match.name
                } else {
                    detail += " (not yet in the catalog; protecting the newest known snapshot)"
                }
                // Flink writes `_metadata`, adds the checkpoint to the store it recovers from, and only then updates
                // its statistics; a checkpoint already on disk with a higher id is what the job would restart from.
                let ahead = all.filter { $0.job == job && $0.kind == .checkpoint && (Int64($0.externalID ?? "") ?? -1) > latest.id }
                if let newest = ahead.max(by: { (Int64($0.externalID ?? "") ?? -1) < (Int64($1.externalID ?? "") ?? -1) }) {
                    point = newest.name
                    detail += "; \(newest.name) is complete on disk but not yet in Flink's statistics"
                }
            }
            return JobStatus(running: running, recoveryPoint: point, detail: detail)
        } catch {
            logger.warning("Flink REST unreachable", metadata: ["error": .string(error.description),
                                                                "retry after seconds": .stringConvertible(retryAfter)])
            outage.record("\(error)", until: Date().addingTimeInterval(retryAfter))
            return unreachable("\(error)")
        }
    }

    /// A snapshot may move only if it is relocatable: a savepoint that names every file relative to its own
    /// directory and shares none of them with another snapshot. Checkpoints name shared files by absolute path and
    /// are Flink's to subsume, and a savepoint a job claimed is read through absolute paths by that job.
    public func checkMove(_ snapshot: Snapshot, to newName: String, in store: Store) throws(StoreError) {
        guard snapshot.engine == FlinkStoreSettings.engineName else { return }
        if snapshot.kind == .checkpoint {
            throw .notPermitted("\(snapshot.name) is a Flink checkpoint: Flink owns it, names its files by absolute path and subsumes it by its directory; it cannot be moved (take a canonical savepoint for a relocatable snapshot)")
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

/// The JobManager's last failure to answer, until it is worth asking again. Shared by every copy of the hooks.
final class RESTOutage: Sendable {
    private let state = Mutex<(why: String, until: Date)?>(nil)

    func record(_ why: String, until: Date) { state.withLock { $0 = (why, until) } }

    /// Why the JobManager is taken to be unreachable now, or nil once it is worth asking again.
    func current(now: Date) -> String? {
        state.withLock { s in
            guard let o = s, now < o.until else { return nil }
            return o.why
        }
    }
}
