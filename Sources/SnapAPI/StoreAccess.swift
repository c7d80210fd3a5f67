import Foundation
import SnapStore

/// What the REST server needs from the process that runs it: the opened store, its engine for triggers, and the
/// engine's verification. The command line builds it the same way its own commands do, so REST and CLI share one
/// implementation of every operation; this module knows nothing of Flink or the local engine.
public struct StoreAccess: Sendable {
    public let store: Store
    public let engine: any SnapshotEngine
    /// `snapfs verify` for this store's engine: `checksums` false checks sizes only.
    public let verify: @Sendable (_ checksums: Bool) throws(StoreError) -> Verification
    /// `snapfs job status --json` for an engine that runs jobs (Flink): the JSON document of the job named by id
    /// or prefix. nil for engines without jobs.
    public let jobStatus: (@Sendable (_ job: String) throws(StoreError) -> Data)?
    /// `snapfs job rescale|restart|stop|upgrade --json` for an engine that runs jobs: the JSON record of what the
    /// intent did. nil for engines without jobs.
    public let jobIntent: (@Sendable (_ job: String, _ intent: JobIntentRequest) throws(StoreError) -> Data)?

    public init(store: Store, engine: any SnapshotEngine, verify: @escaping @Sendable (_ checksums: Bool) throws(StoreError) -> Verification,
                jobStatus: (@Sendable (_ job: String) throws(StoreError) -> Data)? = nil,
                jobIntent: (@Sendable (_ job: String, _ intent: JobIntentRequest) throws(StoreError) -> Data)? = nil) {
        self.store = store
        self.engine = engine
        self.verify = verify
        self.jobStatus = jobStatus
        self.jobIntent = jobIntent
    }

    /// An intent as the API receives it, for the engine that carries it out.
    public enum JobIntentRequest: Sendable, Hashable {
        case rescale(parallelism: Int, jar: String?, entryClass: String?)
        case restart(from: String, parallelism: Int?, claimMode: String?, jar: String?, entryClass: String?)
        case stop(format: String?)
        case upgrade(jar: String, entryClass: String?, parallelism: Int?)
    }

    /// A verification's outcome in the terms every engine shares, with the engine's full report beside it.
    public struct Verification: Sendable {
        public var clean: Bool
        public var snapshots: Int
        public var problems: Int
        public var unreferenced: Int
        /// The report as `snapfs verify --json` prints it.
        public var reportJSON: Data

        public init(clean: Bool, snapshots: Int, problems: Int, unreferenced: Int, reportJSON: Data) {
            self.clean = clean
            self.snapshots = snapshots
            self.problems = problems
            self.unreferenced = unreferenced
            self.reportJSON = reportJSON
        }
    }
}

/// Runs the store's blocking calls (SQLite, file I/O, the engine's snapshot) on threads of their own, off the
/// server's event loops and Swift's cooperative pool.
enum Blocking {
    private static let queue = DispatchQueue(label: "snapfs.api.store", attributes: .concurrent)

    static func run<T: Sendable>(_ body: @escaping @Sendable () throws(StoreError) -> T) async -> Result<T, StoreError> {
        await withCheckedContinuation { (c: CheckedContinuation<Result<T, StoreError>, Never>) in
            queue.async {
                do throws(StoreError) { c.resume(returning: .success(try body())) } catch { c.resume(returning: .failure(error)) }
            }
        }
    }
}
