import Foundation
import SnapStore

/// The calls of Flink's REST API that start, stop and rescale jobs (shapes as Flink 2.3.0 answers them), for the
/// declarative intents in `JobIntents`.
extension FlinkREST {
    /// `GET /jobs/:id`, reduced to what an intent waits for.
    struct JobDetails: Sendable, Hashable {
        var state: String
        /// The highest of the operators' parallelism; nil when the job names no operator.
        var parallelism: Int?
        /// Every operator's status (`vertices[].status`): RUNNING once its tasks are deployed and restored.
        var vertexStatuses: [String]

        /// The job runs: its own state and every operator's are RUNNING (a finished source may be FINISHED).
        var isRunning: Bool {
            state == "RUNNING" && !vertexStatuses.isEmpty && vertexStatuses.allSatisfy { $0 == "RUNNING" || $0 == "FINISHED" }
        }
    }

    func jobDetails(_ job: String) throws(StoreError) -> JobDetails {
        let answer = try call("GET", "/jobs/\(job)")
        let vertices = answer["vertices"] as? [[String: Any]] ?? []
        return JobDetails(state: answer["state"] as? String ?? "UNKNOWN",
                          parallelism: vertices.compactMap { ($0["parallelism"] as? NSNumber)?.intValue }.max(),
                          vertexStatuses: vertices.compactMap { $0["status"] as? String })
    }

    /// `GET /jobs/:id/resource-requirements`: answered only where the job runs under the adaptive scheduler (the
    /// default scheduler refuses it), so an answer with at least one operator is how the scheduler is detected.
    /// nil when refused, with why.
    func resourceRequirements(_ job: String) -> (requirements: [String: Any]?, refusal: String?) {
        do {
            let answer = try call("GET", "/jobs/\(job)/resource-requirements")
            guard !answer.isEmpty, answer.values.allSatisfy({ ($0 as? [String: Any])?["parallelism"] != nil }) else {
                return (nil, "GET /jobs/\(job)/resource-requirements named no operator")
            }
            return (answer, nil)
        } catch {
            return (nil, error.description)
        }
    }

    /// `PUT /jobs/:id/resource-requirements` with every operator's upper bound set to `parallelism`.
    func setParallelism(_ job: String, _ parallelism: Int, current: [String: Any]) throws(StoreError) {
        var body: [String: Any] = [:]
        for vertex in current.keys {
            body[vertex] = ["parallelism": ["lowerBound": 1, "upperBound": parallelism]]
        }
        _ = try call("PUT", "/jobs/\(job)/resource-requirements", body: body)
    }

    /// `POST /jobs/:id/stop`: stop-with-savepoint; returns the request id to poll with `savepointStatus`.
    func stopWithSavepoint(_ job: String, formatType: String, targetDirectory: String) throws(StoreError) -> String {
        let answer = try call("POST", "/jobs/\(job)/stop",
                              body: ["targetDirectory": targetDirectory, "drain": false, "formatType": formatType])
        guard let id = answer["request-id"] as? String else { throw .snapshotFailed("Flink did not return a stop request id") }
        return id
    }

    /// `PATCH /jobs/:id?mode=cancel`.
    func cancel(_ job: String) throws(StoreError) {
        _ = try call("PATCH", "/jobs/\(job)?mode=cancel")
    }

    /// `GET /jars`: the ids of the jars uploaded to this cluster.
    func jarIDs() throws(StoreError) -> Set<String> {
        let answer = try call("GET", "/jars")
        return Set((answer["files"] as? [[String: Any]] ?? []).compactMap { $0["id"] as? String })
    }

    /// `POST /jars/upload` (multipart, field `jarfile`): returns the jar's id, the last component of the path Flink
    /// answers with.
    func uploadJar(_ path: String) throws(StoreError) -> String {
        guard let bytes = FileManager.default.contents(atPath: path) else {
            throw .badInput("cannot read jar \(path)")
        }
        let boundary = "snapfs-\(UUID().uuidString)"
        let filename = (path as NSString).lastPathComponent.replacingOccurrences(of: "\"", with: "_")
        var body = Data("--\(boundary)\r\nContent-Disposition: form-data; name=\"jarfile\"; filename=\"\(filename)\"\r\nContent-Type: application/x-java-archive\r\n\r\n".utf8)
        body.append(bytes)
        body.append(Data("\r\n--\(boundary)--\r\n".utf8))
        let answer = try call("POST", "/jars/upload", raw: body, contentType: "multipart/form-data; boundary=\(boundary)")
        guard let name = answer["filename"] as? String, let id = name.split(separator: "/").last.map(String.init), !id.isEmpty else {
            throw .snapshotFailed("Flink did not name the uploaded jar (POST /jars/upload)")
        }
        return id
    }

    /// What `POST /jars/:id/run` is given.
    struct RunRequest: Sendable {
        var entryClass: String?
        var programArgs: [String]
        var parallelism: Int?
        var savepointPath: String?
        /// NO_CLAIM or CLAIM.
        var claimMode: String
    }

    /// `POST /jars/:id/run` → the new job's id.
    func runJar(_ jar: String, _ run: RunRequest) throws(StoreError) -> String {
        var body: [String: Any] = ["allowNonRestoredState": false, "claimMode": run.claimMode]
        if let c = run.entryClass { body["entryClass"] = c }
        if !run.programArgs.isEmpty { body["programArgsList"] = run.programArgs }
        if let p = run.parallelism { body["parallelism"] = p }
        if let s = run.savepointPath { body["savepointPath"] = s }
        let answer = try call("POST", "/jars/\(jar)/run", body: body)
        guard let id = answer["jobid"] as? String else { throw .snapshotFailed("Flink did not return the new job's id (POST /jars/\(jar)/run)") }
        return id
    }
}
