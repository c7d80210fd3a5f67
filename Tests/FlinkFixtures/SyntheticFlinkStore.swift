import Foundation

/// A small Flink store written byte by byte in the layout of `MetadataV2V3SerializerBase` (version 3, so no
/// properties trailer is needed), with the layouts whose files are longer than their handles say:
/// - job `J`, the changelog backend over HashMap: each checkpoint names materialized state (a whole file) and
///   changelog (DSTL) files, which Flink writes one byte longer than the handle's size (a compression flag);
/// - job `K`, file merging: two checkpoints name segments of one physical file, which is longer than either's
///   furthest segment end.
/// Its `expected` lists what Flink's own deserializer (`Refs2.java`) would print: each file with its size rule.
public enum SyntheticFlinkStore {
    /// The prefix the absolute paths inside `_metadata` begin with; map it to the store's root.
    public static let writtenAt = "file:/srv/flink-synthetic"
    public static let changelogJob = "0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a"
    public static let mergingJob = "0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b"

    public enum Rule: String, Sendable {
        case exact
        case atLeast = "at-least"
    }

    public struct File: Sendable, Hashable {
        /// Store-relative path.
        public var path: String
        /// What Flink's rule compares the file's length with.
        public var required: Int64
        public var rule: Rule
        /// The length the file really has.
        public var length: Int64
    }

    public struct Snapshot: Sendable {
        /// Store-relative directory holding `_metadata`.
        public var directory: String
        public var files: [File]
    }

    /// Writes the store under `root` (which must exist) and returns what each snapshot needs.
    @discardableResult
    public static func write(at root: URL) throws -> [Snapshot] {
        let j = "checkpoints/\(changelogJob)", k = "checkpoints/\(mergingJob)"
        let materialized = File(path: "\(j)/shared/materialized-1", required: 40, rule: .exact, length: 40)
        let dstl1 = File(path: "changelog/\(changelogJob)/dstl-1", required: 100, rule: .atLeast, length: 101)
        let dstl2 = File(path: "changelog/\(changelogJob)/dstl-2", required: 60, rule: .atLeast, length: 61)
        let physical = "\(k)/shared/physical-1"
        let snapshots = [
            Snapshot(directory: "\(j)/chk-1", files: [materialized, dstl1]),
            Snapshot(directory: "\(j)/chk-2", files: [materialized, dstl1, dstl2]),
            Snapshot(directory: "\(k)/chk-1", files: [File(path: physical, required: 50, rule: .atLeast, length: 200)]),
            Snapshot(directory: "\(k)/chk-2", files: [File(path: physical, required: 120, rule: .atLeast, length: 200)]),
        ]
        // Every file's bytes differ, so a copy that loses or shifts a byte is caught.
        func bytes(_ path: String, _ length: Int64) -> Data {
            var seed = UInt64(truncatingIfNeeded: path.utf8.reduce(5381) { ($0 &* 33) &+ Int($1) })
            return Data((0..<length).map { _ in
                seed = seed &* 6364136223846793005 &+ 1442695040888963407
                return UInt8(truncatingIfNeeded: seed >> 56)
            })
        }
        var written = Set<String>()
        for file in snapshots.flatMap(\.files) where written.insert(file.path).inserted {
            let url = root.appendingPathComponent(file.path)
            try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
            try bytes(file.path, file.length).write(to: url)
        }
        func uri(_ file: File) -> String { writtenAt + "/" + file.path }

        var w = Writer()
        // J chk-1: materialized state plus one changelog file.
        w.begin(checkpoint: 1)
        w.changelog(materialized: (uri(materialized), materialized.required), changelog: [(uri(dstl1), dstl1.required)], id: 1)
        try w.finish(root.appendingPathComponent(snapshots[0].directory))
        // J chk-2: the same materialized state, the first changelog file again and a second one.
        w.begin(checkpoint: 2)
        w.changelog(materialized: (uri(materialized), materialized.required),
                    changelog: [(uri(dstl1), dstl1.required), (uri(dstl2), dstl2.required)], id: 2)
        try w.finish(root.appendingPathComponent(snapshots[1].directory))
        // K chk-1 and chk-2: segments [0, 50) and [50, 120) of one physical file of 200 bytes.
        w.begin(checkpoint: 1)
        w.segment(writtenAt + "/" + physical, start: 0, size: 50)
        try w.finish(root.appendingPathComponent(snapshots[2].directory))
        w.begin(checkpoint: 2)
        w.segment(writtenAt + "/" + physical, start: 50, size: 70)
        try w.finish(root.appendingPathComponent(snapshots[3].directory))
        return snapshots
    }

    /// `DataOutputStream`, big-endian; one operator with one subtask holding one managed keyed handle.
    struct Writer {
        var bytes: [UInt8] = []
        mutating func u8(_ v: UInt8) { bytes.append(v) }
        mutating func i32(_ v: Int32) { bytes += withUnsafeBytes(of: v.bigEndian, Array.init) }
        mutating func i64(_ v: Int64) { bytes += withUnsafeBytes(of: v.bigEndian, Array.init) }
        mutating func utf(_ s: String) { let b = Array(s.utf8); u8(UInt8(b.count >> 8)); u8(UInt8(b.count & 0xFF)); bytes += b }

        mutating func begin(checkpoint: Int64) {
            bytes = []
            i32(0x4960_672D); i32(3)
            i64(checkpoint)
            i32(0)  // no master states
            i32(1)  // one operator
            bytes += Array(repeating: 0x5A, count: 16); i32(1); i32(128)
            u8(0)  // no coordinator state
            i32(1)  // one subtask
            i32(0)  // subtask 0, with state
            i32(0); i32(0)  // no managed or raw operator state
        }

        /// Key groups handle v2 (type 12) over one key group, delegating to `delegate`'s bytes.
        mutating func keyGroups(_ delegate: (inout Writer) -> Void, id: String) {
            u8(12); i32(0); i32(1); i64(0)
            delegate(&self)
            utf(id)
        }

        /// Changelog handle (type 14): materialized key groups over a file, then a changelog file handle (type 13)
        /// with one part per DSTL file.
        mutating func changelog(materialized: (String, Int64), changelog: [(String, Int64)], id: Int64) {
            u8(14); i32(0); i32(128); i64(999)
            i32(1)
            keyGroups({ $0.u8(2); $0.i64(materialized.1); $0.utf(materialized.0) }, id: "materialized")
            i32(1)
            u8(13); i32(0); i32(128); i32(Int32(changelog.count))
            for part in changelog { i64(0); u8(2); i64(part.1); utf(part.0) }
            let total = changelog.reduce(0) { $0 + $1.1 }
            i64(total); i64(total); utf("changelog-\(id)"); utf("filesystem")
            i64(1); i64(id); utf("backend-\(id)")
            finishSubtask()
        }

        /// Key groups handle over a file-merging segment (type 15, exclusive scope).
        mutating func segment(_ physical: String, start: Int64, size: Int64) {
            keyGroups({ $0.u8(15); $0.i64(start); $0.i64(size); $0.i32(0); $0.utf(physical); $0.utf("logical-\(start)") }, id: "segment-\(start)")
            finishSubtask()
        }

        private mutating func finishSubtask() {
            u8(0)  // no raw keyed state
            i32(0); i32(0)  // no channel state
        }

        func finish(_ directory: URL) throws {
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
            try Data(bytes).write(to: directory.appendingPathComponent("_metadata"))
        }
    }
}
