import Foundation

/// What `snapfs status` and the mount's `.snapfs/status` both show: engine, job, recovery point, retention and the
/// requests in flight, read in one place so the two never disagree.
public struct StoreStatus: Codable, Sendable {
    public var engine: String
    /// The job, or with several (`job.jobs`) each one's state and recovery point.
    public var job: JobStatus
    /// The snapshot a restart would use, when the job runs.
    public var recoveryPoint: String?
    public var snapshots: Int
    public var checkpoints: Int
    public var userSnapshots: Int
    /// Snapshots under a hold (`snapfs hold`, `user.snapfs.hold`), which delete, move and retention refuse.
    public var held: Int
    public var retain: String?
    public var checkpointInterval: String?
    public var requestsInFlight: [SnapshotRequest]
    /// The catalog's change counter: a reader can tell whether anything changed since it last looked.
    public var generation: Int64
}

extension Store {
    public func status() throws(StoreError) -> StoreStatus {
        let snaps = try snapshots()
        let job = jobStatus()
        return StoreStatus(
            engine: engineName, job: job, recoveryPoint: job.protectsAny ? job.recoveryPoint : nil,
            snapshots: snaps.count, checkpoints: snaps.filter { $0.kind == .checkpoint }.count,
            userSnapshots: snaps.filter { $0.kind == .user }.count,
            held: try holdCount(),
            retain: try meta("retain"), checkpointInterval: try meta("checkpoint_interval"),
            requestsInFlight: try requests().filter { $0.state == .pending || $0.state == .running },
            generation: generation())
    }
}
