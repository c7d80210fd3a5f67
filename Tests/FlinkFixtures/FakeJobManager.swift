import Foundation
import Synchronization

/// The job lifecycle of a JobManager, over a `FakeCluster`'s job table: jobs' details and parallelism, the
/// adaptive scheduler's resource requirements, stop-with-savepoint, jar upload and run, cancel; with faults a
/// test switches on (a savepoint Flink fails, a run it refuses, a job that never gets to RUNNING).
///
/// A savepoint is written by `writeSavepoint` (the test copies a real one into the store, as Flink would write
/// it) and named by Flink's location for it.
public final class FakeJobManager: Sendable {
    public struct Faults: Sendable {
        /// Flink's failure cause for the next stop-with-savepoint; the job keeps running.
        public var savepointFails: String?
        /// How many of the next `POST /jars/:id/run` Flink refuses, and with what.
        public var runRefusals = 0
        public var runRefusal = "org.apache.flink.runtime.client.JobSubmissionException: Failed to submit job."
        /// Jobs started from now on stay in this state (e.g. RESTARTING) instead of RUNNING.
        public var startedState: String?
        /// A `PUT resource-requirements` is taken but the job never reaches the parallelism (no free slots).
        public var adaptiveStuck = false
        public init() {}
    }

    /// What `POST /jars/:id/run` was asked.
    public struct Run: Sendable, Hashable {
        public var jar: String
        public var job: String
        public var parallelism: Int?
        public var savepointPath: String?
        public var claimMode: String?
        public var entryClass: String?
    }

    public let cluster: FakeCluster
    /// Whether jobs run under the adaptive scheduler (`GET /jobs/:id/resource-requirements` is answered).
    public let adaptive: Bool
    public let faults = Mutex(Faults())
    public let parallelism = Mutex<[String: Int]>([:])
    public let jars = Mutex<[String]>([])
    public let runs = Mutex<[Run]>([])
    /// Every stop-with-savepoint asked: job and format.
    public let stops = Mutex<[(job: String, format: String)]>([])
    /// Every savepoint triggered without stopping: job and format.
    public let savepoints = Mutex<[(job: String, format: String)]>([])
    private let writeSavepoint: @Sendable (_ job: String, _ format: String) -> String
    private let pending = Mutex<[String: (job: String, format: String, stops: Bool)]>([:])
    private let counter = Mutex(0)

    /// `writeSavepoint(job, format)` writes a savepoint into the store and returns Flink's location for it.
    public init(cluster: FakeCluster, adaptive: Bool = false, writeSavepoint: @escaping @Sendable (_ job: String, _ format: String) -> String) {
        self.cluster = cluster
        self.adaptive = adaptive
        self.writeSavepoint = writeSavepoint
    }

    public func serve() throws -> FakeFlink {
        try cluster.serve { [self] method, path, body in answer(method, path, body) }
    }

    private func next() -> Int { counter.withLock { $0 += 1; return $0 } }

    private static func json(_ body: String) -> [String: Any] {
        (try? JSONSerialization.jsonObject(with: Data(body.utf8))) as? [String: Any] ?? [:]
    }

    func answer(_ method: String, _ rawPath: String, _ body: String) -> (Int, String) {
        let path = rawPath.split(separator: "?").first.map(String.init) ?? rawPath
        let parts = path.split(separator: "/").map(String.init)
        let table = cluster.jobs.withLock { $0 }
        let notFound = (404, #"{"errors":["Job could not be found."]}"#)
        switch (method, parts.count) {
        case ("GET", 1) where parts[0] == "jars":
            let files = jars.withLock { $0 }.map { #"{"id":"\#($0)","name":"\#($0)"}"# }
            return (200, #"{"address":"http://fake","files":[\#(files.joined(separator: ","))]}"#)
        case ("POST", 2) where parts == ["jars", "upload"]:
            guard body.contains("name=\"jarfile\"") else { return (400, #"{"errors":["no jarfile field"]}"#) }
            let id = "\(UUID().uuidString.lowercased())_job.jar"
            jars.withLock { $0.append(id) }
            return (200, #"{"filename":"/tmp/flink-web/flink-web-upload/\#(id)","status":"success"}"#)
        case ("POST", 3) where parts[0] == "jars" && parts[2] == "run":
            guard jars.withLock({ $0.contains(parts[1]) }) else { return (400, #"{"errors":["Jar file /tmp/flink-web/\#(parts[1]) does not exist"]}"#) }
            let refused = faults.withLock { f -> String? in
                guard f.runRefusals > 0 else { return nil }
                f.runRefusals -= 1
                return f.runRefusal
            }
            if let refused { return (500, #"{"errors":["Internal server error.","<Exception on server side:\n\#(refused)\n\tat org.apache.flink...>"]}"#) }
            let request = Self.json(body)
            // Random, as Flink's: a job's six-character prefix names it among the store's savepoints.
            let job = UUID().uuidString.replacingOccurrences(of: "-", with: "").lowercased()
            let p = (request["parallelism"] as? NSNumber)?.intValue ?? 1
            runs.withLock {
                $0.append(Run(jar: parts[1], job: job, parallelism: (request["parallelism"] as? NSNumber)?.intValue, savepointPath: request["savepointPath"] as? String,
                              claimMode: request["claimMode"] as? String, entryClass: request["entryClass"] as? String))
            }
            let state = faults.withLock { $0.startedState } ?? "RUNNING"
            cluster.jobs.withLock { $0[job] = FakeCluster.Job(state: state) }
            parallelism.withLock { $0[job] = p }
            return (200, #"{"jobid":"\#(job)"}"#)
        case ("GET", 2) where parts[0] == "jobs":
            guard let j = table[parts[1]] else { return notFound }
            let p = parallelism.withLock { $0[parts[1]] } ?? 1
            let vertexState = j.state == "RUNNING" ? "RUNNING" : (j.state == "FINISHED" ? "FINISHED" : "CREATED")
            return (200, #"{"jid":"\#(parts[1])","state":"\#(j.state)","vertices":[{"id":"v1","parallelism":\#(p),"status":"\#(vertexState)"},{"id":"v2","parallelism":\#(p),"status":"\#(vertexState)"}]}"#)
        case ("PATCH", 2) where parts[0] == "jobs":
            guard table[parts[1]] != nil else { return notFound }
            cluster.set(parts[1], state: "CANCELED")
            return (202, "{}")
        case ("GET", 3) where parts[0] == "jobs" && parts[2] == "resource-requirements":
            guard table[parts[1]] != nil else { return notFound }
            guard adaptive else {
                return (500, #"{"errors":["Internal server error.","<Exception on server side:\njava.lang.UnsupportedOperationException: The default scheduler does not support declarative resource requirements\n>"]}"#)
            }
            let p = parallelism.withLock { $0[parts[1]] } ?? 1
            return (200, #"{"v1":{"parallelism":{"lowerBound":1,"upperBound":\#(p)}},"v2":{"parallelism":{"lowerBound":1,"upperBound":\#(p)}}}"#)
        case ("PUT", 3) where parts[0] == "jobs" && parts[2] == "resource-requirements":
            guard adaptive, table[parts[1]] != nil else { return (500, #"{"errors":["not supported"]}"#) }
            let request = Self.json(body)
            let upper = request.values.compactMap { ((($0 as? [String: Any])?["parallelism"] as? [String: Any])?["upperBound"] as? NSNumber)?.intValue }.max()
            guard let upper else { return (400, #"{"errors":["bad requirements"]}"#) }
            if !faults.withLock({ $0.adaptiveStuck }) { parallelism.withLock { $0[parts[1]] = upper } }
            return (200, "{}")
        case ("POST", 3) where parts[0] == "jobs" && parts[2] == "stop":
            guard let j = table[parts[1]] else { return notFound }
            guard j.state == "RUNNING" else { return (409, #"{"errors":["Job is not RUNNING"]}"#) }
            let format = Self.json(body)["formatType"] as? String ?? "CANONICAL"
            let request = "stop-\(next())"
            pending.withLock { $0[request] = (parts[1], format, true) }
            stops.withLock { $0.append((parts[1], format)) }
            return (202, #"{"request-id":"\#(request)"}"#)
        case ("POST", 3) where parts[0] == "jobs" && parts[2] == "savepoints":
            guard let j = table[parts[1]] else { return notFound }
            guard j.state == "RUNNING" else { return (409, #"{"errors":["Job is not RUNNING"]}"#) }
            let format = Self.json(body)["formatType"] as? String ?? "CANONICAL"
            let request = "savepoint-\(next())"
            pending.withLock { $0[request] = (parts[1], format, false) }
            savepoints.withLock { $0.append((parts[1], format)) }
            return (202, #"{"request-id":"\#(request)"}"#)
        case ("GET", 4) where parts[0] == "jobs" && parts[2] == "savepoints":
            guard let op = pending.withLock({ $0[parts[3]] }) else { return (404, #"{"errors":["unknown request"]}"#) }
            if let failure = faults.withLock({ f -> String? in defer { f.savepointFails = nil }; return f.savepointFails }) {
                return (200, #"{"status":{"id":"COMPLETED"},"operation":{"failure-cause":{"class":"java.util.concurrent.CompletionException","stack-trace":"\#(failure)\n\tat org.apache.flink"}}}"#)
            }
            let location = writeSavepoint(op.job, op.format)
            if op.stops { cluster.set(op.job, state: "FINISHED") }
            pending.withLock { $0[parts[3]] = nil }
            return (200, #"{"status":{"id":"COMPLETED"},"operation":{"location":"\#(location)"}}"#)
        case ("GET", 3) where parts[0] == "jobs" && parts[2] == "exceptions":
            return (200, #"{"root-exception":"java.lang.RuntimeException: the job keeps failing\n\tat demo","exceptionHistory":{"entries":[]}}"#)
        default:
            return (404, #"{"errors":["Not found: \#(path)"]}"#)
        }
    }
}
