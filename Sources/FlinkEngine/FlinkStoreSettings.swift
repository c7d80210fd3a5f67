import FlinkMetadata
import Foundation
import SnapStore

/// How a SnapFS store maps onto a Flink store, kept in the catalog's `meta` table so that every process (the
/// command line, the daemon) sees the same job, cluster and path rewrites.
///
/// The store root is the Flink store directory itself: checkpoints (`<dir>/<job-id>/chk-N`) and savepoints
/// (`savepoint-*`) are found anywhere below it, and the catalog lives beside them. Flink's files are adopted where
/// they are, never copied, so the store costs no space and Flink keeps writing where it always did.
public struct FlinkStoreSettings: Sendable, Equatable {
    public static let engineName = "flink"

    enum Key {
        static let rest = "flink.rest"
        static let job = "flink.job"
        static let pathMap = "flink.path_map"
        static let savepointDirectory = "flink.savepoint_dir"
        static let defaultFormat = "default_format"
        static let triggerTimeout = "flink.trigger_timeout"
        static let jobState = "job_state"
    }

    /// Base URL of the JobManager's REST endpoint, e.g. `http://127.0.0.1:8081`; nil when there is no cluster.
    public var restURL: String?
    /// The job whose recovery point is protected and through which snapshots are triggered.
    public var jobID: String?
    /// Prefix rewrites from where Flink wrote the store (`file:/srv/flink-store`) to where it is now.
    public var pathMap: [(from: String, to: String)]
    /// Where triggered savepoints go, relative to the store root.
    public var savepointDirectory: String
    /// What `default` means for a trigger.
    public var defaultFormat: SnapshotFormat
    /// How long a triggered snapshot may take before the request fails.
    public var triggerTimeout: Double

    public init(restURL: String? = nil, jobID: String? = nil, pathMap: [(from: String, to: String)] = [],
                savepointDirectory: String = "savepoints", defaultFormat: SnapshotFormat = .canonical,
                triggerTimeout: Double = 300) {
        self.restURL = restURL
        self.jobID = jobID
        self.pathMap = pathMap
        self.savepointDirectory = savepointDirectory
        self.defaultFormat = defaultFormat
        self.triggerTimeout = triggerTimeout
    }

    public static func == (a: FlinkStoreSettings, b: FlinkStoreSettings) -> Bool {
        a.restURL == b.restURL && a.jobID == b.jobID && a.savepointDirectory == b.savepointDirectory
            && a.defaultFormat == b.defaultFormat && a.triggerTimeout == b.triggerTimeout
            && a.pathMap.map { "\($0.from)=\($0.to)" } == b.pathMap.map { "\($0.from)=\($0.to)" }
    }

    /// Parses `FROM=TO` as users type it on the command line.
    public static func parsePathMapRule(_ text: String) throws(StoreError) -> (from: String, to: String) {
        guard let eq = text.firstIndex(of: "="), eq != text.startIndex, text.index(after: eq) != text.endIndex else {
            throw .badInput("path map '\(text)' is not FROM=TO (e.g. file:/srv/flink-store=/mnt/backup/flink-store)")
        }
        return (String(text[..<eq]), String(text[text.index(after: eq)...]))
    }

    /// The settings as catalog `meta` rows, for `Store.create`.
    public var metaRows: [String: String] {
        var out: [String: String] = [
            Key.pathMap: pathMap.map { "\($0.from)=\($0.to)" }.joined(separator: "\n"),
            Key.savepointDirectory: savepointDirectory,
            Key.defaultFormat: defaultFormat.rawValue,
            Key.triggerTimeout: String(triggerTimeout),
        ]
        if let restURL { out[Key.rest] = restURL }
        if let jobID { out[Key.job] = jobID }
        return out
    }

    public static func load(from store: Store) throws(StoreError) -> FlinkStoreSettings {
        var s = FlinkStoreSettings()
        s.restURL = try store.meta(Key.rest)
        s.jobID = try store.meta(Key.job)
        if let text = try store.meta(Key.pathMap) {
            for line in text.split(separator: "\n") where !line.isEmpty {
                s.pathMap.append(try parsePathMapRule(String(line)))
            }
        }
        if let d = try store.meta(Key.savepointDirectory), !d.isEmpty { s.savepointDirectory = d }
        if let f = try store.meta(Key.defaultFormat) { s.defaultFormat = try SnapshotFormat(userInput: f) }
        if let t = try store.meta(Key.triggerTimeout).flatMap(Double.init), t > 0 { s.triggerTimeout = t }
        return s
    }

    var metadataPathMap: PathMap { PathMap(pathMap) }
}
