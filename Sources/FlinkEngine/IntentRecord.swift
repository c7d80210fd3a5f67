import Foundation
import SnapStore

/// What one intent did, or is doing: the document `snapfs job rescale|restart|stop|upgrade --json` prints, the
/// REST API answers, and `status` shows as a job's last intent.
public struct IntentRecord: Codable, Sendable, Hashable {
    /// `rescale`, `restart`, `stop` or `upgrade`.
    public var intent: String
    /// The job the intent was asked of (its full id).
    public var job: String
    /// The arguments as one line, as the mount's control files take them (`2`, `--from NAME --parallelism 2`).
    public var arguments: String
    /// `running`, `succeeded` or `failed`.
    public var outcome: String
    /// How a rescale was done: `adaptive` (the adaptive scheduler's resource requirements) or `savepoint` (stopped
    /// with a native savepoint and started again from it); nil for the other intents.
    public var method: String?
    /// The step it failed at, when it failed.
    public var failedStep: String?
    /// What happened, in one sentence: on failure the step, Flink's reason, and where the job was left.
    public var message: String
    /// The snapshot it took (a stop's savepoint) or started from.
    public var snapshot: String?
    /// The job it started (a new job id: Flink gives every submission one), when it started one.
    public var newJob: String?
    /// The parallelism the job runs at now, when known.
    public var parallelism: Int?
    /// Each step and the seconds it took, in order.
    public var steps: [Step]
    /// Seconds since 1970.
    public var startedAt: Double
    public var finishedAt: Double?

    public struct Step: Codable, Sendable, Hashable {
        public var name: String
        public var seconds: Double
    }
}

/// The last intent of every job, kept in the catalog's settings (`flink.intent.<job>`) so that `status` in any
/// process shows it.
struct IntentLog {
    let store: Store
    static let prefix = "flink.intent."

    func last(of job: String) -> IntentRecord? {
        guard let text = try? store.meta(Self.prefix + job) else { return nil }
        return try? JSONDecoder().decode(IntentRecord.self, from: Data(text.utf8))
    }

    func record(_ r: IntentRecord, for job: String) {
        guard let data = try? JSONEncoder().encode(r) else { return }
        try? store.setMeta(Self.prefix + job, String(decoding: data, as: UTF8.self))
    }
}
