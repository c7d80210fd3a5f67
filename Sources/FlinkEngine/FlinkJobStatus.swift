import Foundation
import Synchronization
import SnapStore

/// One job of a Flink store as `snapfs job status` shows it: what the store's rules say (state, whether its
/// recovery point is protected, which snapshot that is) and what the JobManager says of its parallelism.
public struct FlinkJobStatus: Codable, Sendable, Hashable {
    public var job: String
    /// RUNNING, CANCELED, …; UNKNOWN when the JobManager did not answer or does not know the job.
    public var state: String
    /// The job's parallelism: the highest of its operators' (`GET /jobs/:id`); nil when it could not be read.
    public var parallelism: Int?
    /// Why `parallelism` is missing, when it is.
    public var parallelismUnknown: String?
    /// The snapshot a restart of the job would use, protected while the job may need it.
    public var recoveryPoint: String?
    public var protected: Bool
    /// The job's newest complete snapshot.
    public var newest: String?
    /// How the recovery point was decided.
    public var detail: String
    /// The last rescale, restart, stop or upgrade asked of the job (or that started it), when there was one.
    public var lastIntent: IntentRecord? = nil
}

extension FlinkEngine {
    /// The status of one job of this store, named by its id or an unambiguous prefix of it (snapshot names carry the
    /// first six characters).
    public func jobStatus(_ job: String) throws(StoreError) -> FlinkJobStatus {
        var status = try jobStatusWithoutParallelism(job)
        guard let rest = settings.restURL else {
            status.parallelismUnknown = "no JobManager configured (snapfs init --rest)"
            return status
        }
        do { status.parallelism = try FlinkREST(baseURL: rest, timeout: 3).parallelism(of: status.job) }
        catch { status.parallelismUnknown = error.description }
        return status
    }

    /// The status from the store's rules alone (the cluster monitor's latest answer): no request to the JobManager.
    func jobStatusWithoutParallelism(_ job: String) throws(StoreError) -> FlinkJobStatus {
        var jobs = store.jobStatus().jobs
        // A job the cluster runs that has no snapshot here yet (one an intent just started): its state alone.
        if case .answered(let answer)? = hooks?.cluster.view() {
            for (id, info) in answer.jobs where !jobs.contains(where: { $0.job == id }) {
                jobs.append(JobRecovery(job: id, state: info.state, protected: false, recoveryPoint: nil, newest: nil,
                                        detail: "the JobManager reports it \(info.state); it has no snapshot in this store yet"))
            }
        }
        // A job with a recorded intent, by its full id, that neither the store nor the cluster knows any more.
        if !jobs.contains(where: { $0.job == job }), IntentLog(store: store).last(of: job) != nil {
            jobs.append(JobRecovery(job: job, state: "UNKNOWN", protected: false, recoveryPoint: nil, newest: nil,
                                    detail: "neither the JobManager nor a snapshot in this store knows it; its last intent is recorded"))
        }
        let matches = jobs.filter { $0.job == job }.isEmpty ? jobs.filter { $0.job.hasPrefix(job.lowercased()) } : jobs.filter { $0.job == job }
        guard !job.isEmpty, matches.count == 1, let row = matches.first else {
            let known = jobs.map(\.job).sorted().joined(separator: ", ")
            throw .badInput(matches.count > 1
                ? "job '\(job)' is ambiguous: it begins \(matches.count) jobs' ids (\(matches.map(\.job).sorted().joined(separator: ", ")))"
                : "no job '\(job)' in this store" + (known.isEmpty ? " (it holds no job's snapshots)" : "; its jobs: \(known)"))
        }
        return FlinkJobStatus(job: row.job, state: row.state, parallelism: nil, parallelismUnknown: nil,
                              recoveryPoint: row.recoveryPoint, protected: row.protected, newest: row.newest, detail: row.detail,
                              lastIntent: IntentLog(store: store).last(of: row.job))
    }
}

/// Job status for the mount, whose requests never wait on the JobManager: the parallelism shown is the last one the
/// JobManager gave, asked again in the background when it is older than `maxAge` (the first read of a job says it
/// is being asked; a read a moment later has it).
public final class FlinkJobStatusCache: Sendable {
    private struct Answer: Sendable { var parallelism: Int?; var unknown: String?; var at: Date; var asking: Bool }
    private let engine: FlinkEngine
    private let maxAge: TimeInterval
    private let answers = Mutex<[String: Answer]>([:])

    public init(engine: FlinkEngine, maxAge: TimeInterval = 5) {
        self.engine = engine
        self.maxAge = maxAge
    }

    public func status(_ job: String) throws(StoreError) -> FlinkJobStatus {
        var status = try engine.jobStatusWithoutParallelism(job)
        guard let rest = engine.settings.restURL else {
            status.parallelismUnknown = "no JobManager configured (snapfs init --rest)"
            return status
        }
        let id = status.job
        let (cached, ask) = answers.withLock { a -> (Answer?, Bool) in
            let old = a[id]
            let stale = old.map { Date().timeIntervalSince($0.at) > maxAge } ?? true
            guard stale, old?.asking != true else { return (old, false) }
            a[id, default: Answer(parallelism: nil, unknown: nil, at: .distantPast, asking: true)].asking = true
            return (old, true)
        }
        if ask {
            DispatchQueue.global().async { [self] in
                var answer = Answer(parallelism: nil, unknown: nil, at: Date(), asking: false)
                do throws(StoreError) { answer.parallelism = try FlinkREST(baseURL: rest, timeout: 3).parallelism(of: id) }
                catch { answer.unknown = error.description }
                answers.withLock { $0[id] = answer }
            }
        }
        if let cached, cached.at != .distantPast {
            status.parallelism = cached.parallelism
            status.parallelismUnknown = cached.unknown
        } else {
            status.parallelismUnknown = "being asked of the JobManager; read again in a moment"
        }
        return status
    }
}

extension FlinkREST {
    /// `GET /jobs/:id` → the highest parallelism of the job's operators (`vertices[].parallelism`), which is what
    /// `flink run -p N` and a rescale to N set.
    func parallelism(of job: String) throws(StoreError) -> Int {
        let details = try call("GET", "/jobs/\(job)")
        let values = (details["vertices"] as? [[String: Any]] ?? []).compactMap { ($0["parallelism"] as? NSNumber)?.intValue }
        guard let highest = values.max() else {
            throw .snapshotFailed("Flink REST GET /jobs/\(job) named no operator with a parallelism")
        }
        return highest
    }
}
