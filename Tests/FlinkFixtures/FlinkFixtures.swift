import Foundation

/// The two real Flink 2.3.0 stores and what Flink's own deserializer says each snapshot needs.
///
/// They live outside the package (they are shared, read-only test truth); `SNAPFS_FLINK_FIXTURES`
/// points elsewhere when needed. A missing fixture fails the test: passing without the truth
/// would prove nothing. Shared by the reader's and the engine's tests.
public enum FlinkFixtures {
    public static var directory: URL {
        if let p = ProcessInfo.processInfo.environment["SNAPFS_FLINK_FIXTURES"] { return URL(fileURLWithPath: p) }
        // Beside the checkout: <checkout>/../shared/fixtures/flink-2.3 (this file is <checkout>/Tests/<target>/).
        let checkout = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let beside = checkout.deletingLastPathComponent().appendingPathComponent("shared/fixtures/flink-2.3").standardizedFileURL
        if FileManager.default.fileExists(atPath: beside.path) { return beside }
        return URL(fileURLWithPath: "/work/shared/fixtures/flink-2.3")
    }

    /// The prefix every absolute path inside the fixtures' `_metadata` begins with.
    public static let writtenAt = "file:/srv/flink-store"

    public struct Snapshot: Sendable {
        /// Directory holding `_metadata`, relative to the store root.
        public var directory: String
        public var checkpointId: Int64
        public var operators: Int
        public var subtasks: Int
        public var inline: Int
        public var inlineBytes: Int
        /// `path<TAB>size` as Flink printed them, with `file:/srv/flink-store` replaced by the store root.
        public var files: Set<String>
    }

    /// Parses `store-N.references.txt`.
    public static func truth(store: Int, root: String) throws -> [Snapshot] {
        let url = directory.appendingPathComponent("store-\(store).references.txt")
        let text = try String(contentsOf: url, encoding: .utf8)
        var out: [Snapshot] = []
        for line in text.split(separator: "\n", omittingEmptySubsequences: true) {
            if line.hasPrefix("# ") {
                let fields = line.dropFirst(2).split(separator: " ")
                var values: [String: String] = [:]
                for f in fields.dropFirst() {
                    let kv = f.split(separator: "=", maxSplits: 1)
                    if kv.count == 2 { values[String(kv[0])] = String(kv[1]) }
                }
                func int(_ k: String) throws -> Int {
                    guard let v = values[k].flatMap(Int.init) else { throw FixtureError.malformed(String(line)) }
                    return v
                }
                out.append(
                    Snapshot(
                        directory: String(fields[0]), checkpointId: Int64(try int("id")), operators: try int("operators"),
                        subtasks: try int("subtasks"), inline: try int("inline"), inlineBytes: try int("inlineBytes"),
                        files: []))
            } else {
                guard !out.isEmpty, line.hasPrefix(writtenAt + "/") else { throw FixtureError.malformed(String(line)) }
                out[out.count - 1].files.insert(root + line.dropFirst(writtenAt.count))
            }
        }
        return out
    }

    /// A copy of a store in a fresh temporary directory, for tests that change it.
    public static func copy(store: Int) throws -> URL {
        let target = URL(fileURLWithPath: NSTemporaryDirectory()).appendingPathComponent("snapfs-flink-\(UUID().uuidString)")
        try FileManager.default.copyItem(at: directory.appendingPathComponent("store-\(store)"), to: target)
        return target
    }

    public enum FixtureError: Error { case malformed(String) }
}
