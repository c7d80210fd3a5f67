import Foundation
import SnapStore

/// The few calls of Flink's REST API the engine needs (shapes as Flink 2.3.0 answers them).
struct FlinkREST: Sendable {
    let client: HTTPClient
    let base: String

    init(baseURL: String, timeout: Double = 10) throws(StoreError) {
        do { client = try HTTPClient(baseURL: baseURL, timeout: timeout) } catch { throw .badInput(error.description) }
        base = baseURL
    }

    enum Outcome<T: Sendable>: Sendable {
        case inProgress
        case completed(T)
        case failed(String)
    }

    /// Asks `status` every `interval` seconds until Flink completes or fails `what`, or `timeout` passes. Flink
    /// answers an asynchronous operation (savepoint, checkpoint, stop) only by being asked again; one loop, so the
    /// engine's triggers and the intents time out and fail with the same words. `lateNote` says what happens if
    /// Flink finishes after SnapFS gave up.
    static func awaitOutcome<T: Sendable>(_ what: String, timeout: Double, interval: Double, lateNote: String = "",
                                          progress: ProgressHandler? = nil,
                                          _ status: () throws(StoreError) -> Outcome<T>) throws(StoreError) -> T {
        let start = Date()
        while true {
            switch try status() {
            case .completed(let value): return value
            case .failed(let why): throw .snapshotFailed("Flink failed the \(what): \(why)")
            case .inProgress: break
            }
            let elapsed = Date().timeIntervalSince(start)
            if elapsed > timeout {
                throw .snapshotFailed("the \(what) did not complete within \(Int(timeout)) s" + (lateNote.isEmpty ? "" : " (\(lateNote))"))
            }
            progress?(Int64(elapsed), Int64(timeout), "waiting for Flink: \(what)")
            Thread.sleep(forTimeInterval: interval)
        }
    }

    /// Sends a request and decodes a JSON object; Flink's `{"errors": […]}` answers become the error text.
    func call(_ method: String, _ path: String, body: [String: Any]? = nil) throws(StoreError) -> [String: Any] {
        let data: Data?
        if let body {
            guard let encoded = try? JSONSerialization.data(withJSONObject: body) else { throw .badInput("cannot encode request body") }
            data = encoded
        } else {
            data = nil
        }
        return try call(method, path, raw: data, contentType: "application/json")
    }

    /// Sends a request with a body of any type (a jar upload is multipart). An empty 2xx answer (Flink's
    /// `PATCH /jobs/:id`) is an empty object.
    func call(_ method: String, _ path: String, raw data: Data?, contentType: String) throws(StoreError) -> [String: Any] {
        let response: HTTPClient.Response
        do { response = try client.request(method, path, json: data, contentType: contentType) } catch {
            throw .snapshotFailed("Flink REST \(method) \(base)\(path): \(error.description)")
        }
        let object = (try? JSONSerialization.jsonObject(with: response.body)) as? [String: Any]
        guard (200..<300).contains(response.status) else {
            let errors = (object?["errors"] as? [Any])?.map { "\($0)" }.joined(separator: "; ")
            let text = errors ?? String(decoding: response.body.prefix(500), as: UTF8.self)
            throw .snapshotFailed("Flink REST \(method) \(path) answered \(response.status): \(Self.firstLine(text))\(Self.rootCause(text).map { " | root cause: \($0)" } ?? "")")
        }
        if object == nil, response.body.allSatisfy({ $0 == 0x20 || $0 == 0x0a || $0 == 0x0d }) { return [:] }
        guard let object else { throw .snapshotFailed("Flink REST \(method) \(path) did not answer a JSON object") }
        return object
    }

    /// The last `Caused by:` of a Java stack trace: where Flink wraps the reason (a missing checkpoint) in generic
    /// exceptions ("Could not execute application"), the one that says what went wrong.
    static func rootCause(_ text: String) -> String? {
        guard let line = text.split(separator: "\n").last(where: { $0.trimmingCharacters(in: .whitespaces).hasPrefix("Caused by:") }) else { return nil }
        return line.trimmingCharacters(in: .whitespaces).dropFirst("Caused by:".count).trimmingCharacters(in: .whitespaces)
    }

    /// Flink's errors carry whole Java stack traces; the first lines say what happened.
    static func firstLine(_ text: String) -> String {
        let lines = text.split(separator: "\n").prefix(3).map { $0.trimmingCharacters(in: .whitespaces) }
        return lines.joined(separator: " | ")
    }

    /// `GET /jobs/overview` → every job the cluster knows, with its state (RUNNING, CANCELED, …).
    func jobsOverview() throws(StoreError) -> [String: String] {
        let answer = try call("GET", "/jobs/overview")
        guard let jobs = answer["jobs"] as? [[String: Any]] else {
            throw .snapshotFailed("Flink REST GET /jobs/overview did not list jobs")
        }
        var out: [String: String] = [:]
        for j in jobs {
            if let id = j["jid"] as? String, let state = j["state"] as? String { out[id] = state }
        }
        return out
    }

    struct CompletedCheckpoint: Sendable, Hashable {
        var id: Int64
        var externalPath: String?
        var isSavepoint: Bool
    }

    /// When Flink says a checkpoint was triggered and completed, in seconds since 1970.
    public struct CheckpointTimes: Sendable, Hashable {
        public var triggered: Double
        public var completed: Double?
    }

    /// What `GET /jobs/:id/checkpoints` says about a job's recovery point and recent checkpoints.
    struct CheckpointStatistics: Sendable, Hashable {
        /// `latest.completed`.
        var latest: CompletedCheckpoint?
        /// `latest.restored.external_path`: what the job started from, before it completed a checkpoint of its own.
        var restoredPath: String?
        /// `history`: the recent checkpoints (Flink keeps `web.checkpoints.history` of them), by id.
        var times: [Int64: CheckpointTimes]
    }

    /// `GET /jobs/:id/checkpoints` → `latest.completed`, `latest.restored` and the times of the history.
    func checkpointStatistics(_ job: String) throws(StoreError) -> CheckpointStatistics {
        let stats = try call("GET", "/jobs/\(job)/checkpoints")
        let latest = stats["latest"] as? [String: Any]
        var out = CheckpointStatistics(latest: nil, restoredPath: nil, times: [:])
        if let completed = latest?["completed"] as? [String: Any], let id = (completed["id"] as? NSNumber)?.int64Value {
            out.latest = CompletedCheckpoint(id: id, externalPath: completed["external_path"] as? String,
                                             isSavepoint: (completed["is_savepoint"] as? Bool) ?? false)
        }
        out.restoredPath = (latest?["restored"] as? [String: Any])?["external_path"] as? String
        for entry in (stats["history"] as? [[String: Any]]) ?? [] {
            guard let id = (entry["id"] as? NSNumber)?.int64Value, (entry["status"] as? String) == "COMPLETED",
                  let trigger = (entry["trigger_timestamp"] as? NSNumber)?.doubleValue, trigger > 0 else { continue }
            let ack = (entry["latest_ack_timestamp"] as? NSNumber)?.doubleValue
            out.times[id] = CheckpointTimes(triggered: trigger / 1000, completed: ack.flatMap { $0 > 0 ? $0 / 1000 : nil })
        }
        return out
    }

    func triggerSavepoint(_ job: String, formatType: String, targetDirectory: String) throws(StoreError) -> String {
        let answer = try call("POST", "/jobs/\(job)/savepoints",
                              body: ["formatType": formatType, "target-directory": targetDirectory, "cancel-job": false])
        guard let id = answer["request-id"] as? String else { throw .snapshotFailed("Flink did not return a savepoint request id") }
        return id
    }

    func savepointStatus(_ job: String, request: String) throws(StoreError) -> Outcome<String> {
        let answer = try call("GET", "/jobs/\(job)/savepoints/\(request)")
        guard let status = (answer["status"] as? [String: Any])?["id"] as? String else { return .inProgress }
        guard status == "COMPLETED" else { return .inProgress }
        let operation = answer["operation"] as? [String: Any] ?? [:]
        if let cause = operation["failure-cause"] as? [String: Any] { return .failed(Self.cause(cause)) }
        guard let location = operation["location"] as? String else { return .failed("Flink reported no savepoint location") }
        return .completed(location)
    }

    func triggerCheckpoint(_ job: String, checkpointType: String) throws(StoreError) -> String {
        let answer = try call("POST", "/jobs/\(job)/checkpoints", body: ["checkpointType": checkpointType])
        guard let id = answer["request-id"] as? String else { throw .snapshotFailed("Flink did not return a checkpoint request id") }
        return id
    }

    func checkpointStatus(_ job: String, request: String) throws(StoreError) -> Outcome<Int64> {
        let answer = try call("GET", "/jobs/\(job)/checkpoints/\(request)")
        guard let status = (answer["status"] as? [String: Any])?["id"] as? String, status == "COMPLETED" else { return .inProgress }
        let operation = answer["operation"] as? [String: Any] ?? [:]
        if let cause = (operation["failureCause"] ?? operation["failure-cause"]) as? [String: Any] { return .failed(Self.cause(cause)) }
        guard let id = (operation["checkpointId"] as? NSNumber)?.int64Value else { return .failed("Flink reported no checkpoint id") }
        return .completed(id)
    }

    /// A `SerializedThrowable` as JSON: its class and the head of its stack trace.
    static func cause(_ cause: [String: Any]) -> String {
        let trace = (cause["stack-trace"] as? String).map(firstLine) ?? ""
        let cls = cause["class"] as? String ?? "failure"
        return trace.isEmpty ? cls : trace
    }
}
