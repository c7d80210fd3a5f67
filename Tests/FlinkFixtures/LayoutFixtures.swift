import Foundation

/// Real Flink 2.3.0 stores of the state layouts beyond RocksDB-incremental and HashMap (file merging, changelog,
/// unaligned checkpoints, ForSt), kept in the repository under `Tests/Fixtures/flink-2.3-layouts/`, with what
/// Flink's own deserializer (`Refs2.java`) printed for each snapshot: every file with its size rule, and whether
/// Flink could restore it.
public enum LayoutFixtures {
    public static let layouts = ["file-merging", "changelog", "unaligned", "forst"]

    public static var directory: URL {
        if let p = ProcessInfo.processInfo.environment["SNAPFS_FLINK_LAYOUT_FIXTURES"] { return URL(fileURLWithPath: p) }
        // This file is <checkout>/Tests/FlinkFixtures/LayoutFixtures.swift.
        return URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Fixtures/flink-2.3-layouts")
    }

    /// The prefix the absolute paths inside a layout's `_metadata` begin with (where Flink wrote the store).
    public static func writtenAt(_ layout: String) -> String { "file:/srv/flink-layouts/\(layout)" }

    public enum Rule: String, Sendable {
        case exact
        case atLeast = "at-least"
    }

    public struct File: Sendable, Hashable {
        /// Store-relative path.
        public var path: String
        /// The size Flink's rule compares the file's length with: the whole file's size, the furthest segment end,
        /// or the changelog handle's size.
        public var required: Int64
        public var rule: Rule
    }

    public struct Snapshot: Sendable {
        /// Store-relative directory holding `_metadata`.
        public var directory: String
        public var checkpointId: Int64
        public var files: Set<File>
        /// Whether every file is there with the length Flink's rule asks (Refs2's `restorable=`).
        public var restorable: Bool
    }

    /// Parses `<layout>.refs2.txt`. Paths outside the store would stay absolute; none of these stores has any.
    public static func truth(_ layout: String) throws -> [Snapshot] {
        let text = try String(contentsOf: directory.appendingPathComponent("\(layout).refs2.txt"), encoding: .utf8)
        let prefix = writtenAt(layout) + "/"
        let bare = String(prefix.dropFirst("file:".count))
        var out: [Snapshot] = []
        func relative(_ p: Substring) throws -> String {
            guard p.hasPrefix(prefix) else { throw FlinkFixtures.FixtureError.malformed(String(p)) }
            return String(p.dropFirst(prefix.count))
        }
        for line in text.split(separator: "\n", omittingEmptySubsequences: true) {
            if line.hasPrefix("# ") {
                let fields = line.dropFirst(2).split(separator: " ")
                guard let dir = fields.first, dir.hasPrefix(bare) else { throw FlinkFixtures.FixtureError.malformed(String(line)) }
                if line.contains(" NO_METADATA ") { continue }
                guard let id = fields.first(where: { $0.hasPrefix("id=") }).flatMap({ Int64($0.dropFirst(3)) }),
                      let verdict = fields.first(where: { $0.hasPrefix("restorable=") }) else {
                    throw FlinkFixtures.FixtureError.malformed(String(line))
                }
                out.append(Snapshot(directory: String(dir.dropFirst(bare.count)), checkpointId: id, files: [],
                                    restorable: verdict == "restorable=yes"))
                continue
            }
            if line.hasPrefix("DIR\t") || line.hasPrefix("!") { continue }
            let parts = line.split(separator: "\t")
            guard !out.isEmpty, parts.count >= 2 else { throw FlinkFixtures.FixtureError.malformed(String(line)) }
            let path = try relative(parts[0])
            let file: File
            if parts[1].hasPrefix(">="), let end = Int64(parts[1].dropFirst(2)) {
                file = File(path: path, required: end, rule: .atLeast)
            } else if let size = Int64(parts[1]) {
                file = File(path: path, required: size, rule: parts.count > 2 && parts[2] == "changelog" ? .atLeast : .exact)
            } else {
                throw FlinkFixtures.FixtureError.malformed(String(line))
            }
            out[out.count - 1].files.insert(file)
        }
        return out
    }

    /// A copy of a layout's store in a fresh temporary directory, for tests that change it or mount it.
    public static func copy(_ layout: String, under parent: URL = URL(fileURLWithPath: NSTemporaryDirectory())) throws -> URL {
        let target = parent.appendingPathComponent("snapfs-layout-\(layout)-\(UUID().uuidString)")
        try FileManager.default.copyItem(at: directory.appendingPathComponent(layout), to: target)
        return target
    }
}
