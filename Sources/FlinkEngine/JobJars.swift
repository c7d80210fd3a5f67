import Foundation
import SnapStore

/// The jar a job runs from, as SnapFS needs it to start the job again (a rescale without the adaptive scheduler,
/// a restart, an upgrade): Flink keeps no link from a job back to the jar it was submitted from.
public struct JobJar: Codable, Sendable, Hashable {
    /// The id Flink gave the uploaded jar (`/jars/:id/run`).
    public var jarID: String
    /// The local file it was uploaded from, when SnapFS uploaded it: uploaded again when the cluster no longer has
    /// the id (a restarted JobManager forgets its uploads).
    public var path: String?
    /// `entryClass`, when the jar's manifest names none.
    public var entryClass: String?
    public var programArgs: [String]

    public init(jarID: String, path: String? = nil, entryClass: String? = nil, programArgs: [String] = []) {
        self.jarID = jarID
        self.path = path
        self.entryClass = entryClass
        self.programArgs = programArgs
    }
}

/// What a user gives for a jar: a local file to upload, or the id of a jar already uploaded to the cluster.
public struct JarSpec: Sendable, Hashable {
    public var jar: String
    public var entryClass: String?
    public var programArgs: [String]?

    public init(jar: String, entryClass: String? = nil, programArgs: [String]? = nil) {
        self.jar = jar
        self.entryClass = entryClass
        self.programArgs = programArgs
    }
}

/// The jar recorded per job, in the catalog's settings (`flink.jar.<job>`), so every process sees it. A job
/// started by an intent inherits the record of the job it replaces.
struct JobJarRegistry {
    let store: Store
    static let prefix = "flink.jar."

    func jar(of job: String) throws(StoreError) -> JobJar? {
        guard let text = try store.meta(Self.prefix + job) else { return nil }
        guard let jar = try? JSONDecoder().decode(JobJar.self, from: Data(text.utf8)) else {
            throw .corrupt("the jar recorded for job \(job) is not readable (catalog setting \(Self.prefix + job))")
        }
        return jar
    }

    func record(_ jar: JobJar, for job: String) throws(StoreError) {
        guard let data = try? JSONEncoder().encode(jar) else { throw .badInput("cannot encode the jar of job \(job)") }
        try store.setMeta(Self.prefix + job, String(decoding: data, as: UTF8.self))
    }

    /// A user's jar as a record: a file that exists is uploaded now, anything else must be a jar the cluster has.
    func resolve(_ spec: JarSpec, api: FlinkREST, inherit: JobJar?) throws(StoreError) -> JobJar {
        var isDirectory: ObjCBool = false
        let entry = spec.entryClass ?? inherit?.entryClass
        let args = spec.programArgs ?? inherit?.programArgs ?? []
        if FileManager.default.fileExists(atPath: spec.jar, isDirectory: &isDirectory), !isDirectory.boolValue {
            let path = URL(fileURLWithPath: spec.jar).standardizedFileURL.path
            let id: String
            do { id = try api.uploadJar(path) } catch { throw .snapshotFailed("uploading jar \(path) to Flink failed: \(error.description)") }
            return JobJar(jarID: id, path: path, entryClass: entry, programArgs: args)
        }
        if spec.jar.contains("/") || spec.jar.isEmpty {
            throw .badInput("jar '\(spec.jar)' is neither a file here nor an uploaded jar's id")
        }
        let known = try api.jarIDs()
        guard known.contains(spec.jar) else {
            throw .badInput("jar '\(spec.jar)' is neither a file here nor a jar uploaded to the cluster (GET /jars lists \(known.count): \(known.sorted().prefix(5).joined(separator: ", ")))")
        }
        return JobJar(jarID: spec.jar, path: nil, entryClass: entry, programArgs: args)
    }

    /// The recorded jar, made available on the cluster: uploaded again from its file when the cluster no longer
    /// has its id.
    func ensureUploaded(_ jar: JobJar, api: FlinkREST) throws(StoreError) -> JobJar {
        let known = try api.jarIDs()
        if known.contains(jar.jarID) { return jar }
        guard let path = jar.path, FileManager.default.fileExists(atPath: path) else {
            throw .badInput("the cluster no longer has jar \(jar.jarID) and SnapFS has no file to upload it from again: give the job's jar with --jar JAR")
        }
        var again = jar
        do { again.jarID = try api.uploadJar(path) } catch { throw .snapshotFailed("uploading jar \(path) to Flink again failed: \(error.description)") }
        return again
    }
}
