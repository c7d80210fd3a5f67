import Foundation
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
}

extension FlinkEngine {
    /// The status of one job of this store, named by its id or an unambiguous prefix of it (snapshot names carry the
    /// first six characters).
    public func jobStatus(_ job: String) throws(StoreError) -> FlinkJobStatus {
        let jobs = store.jobStatus().jobs
        let matches = jobs.filter { $0.job == job }.isEmpty ? jobs.filter { $0.job.hasPrefix(job.lowercased()) } : jobs.filter { $0.job == job }
        guard !job.isEmpty, matches.count == 1, let row = matches.first else {
            let known = jobs.map(\.job).sorted().joined(separator: ", ")
            throw .badInput(matches.count > 1
                ? "job '\(job)' is ambiguous: it begins \(matches.count) jobs' ids (\(matches.map(\.job).sorted().joined(separator: ", ")))"
                : "no job '\(job)' in this store" + (known.isEmpty ? " (it holds no job's snapshots)" : "; its jobs: \(known)"))
        }
        var status = FlinkJobStatus(job: row.job, state: row.state, parallelism: nil, parallelismUnknown: nil,
                                    recoveryPoint: row.recoveryPoint, protected: row.protected, newest: row.newest, detail: row.detail)
        guard let rest = settings.restURL else {
            status.parallelismUnknown = "no JobManager configured (snapfs init --rest)"
            return status
        }
        do { status.parallelism = try FlinkREST(baseURL: rest, timeout: 3).parallelism(of: row.job) }
        catch { status.parallelismUnknown = error.description }
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
