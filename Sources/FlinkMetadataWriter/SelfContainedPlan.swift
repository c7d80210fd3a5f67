import FlinkMetadata

/// What makes a snapshot self-contained: every file it needs, copied under one new directory and named
/// relative to it (Flink's relocatable savepoint layout) or by absolute path there, and the `_metadata` that
/// names them so.
///
/// Pure: it decides names and writes the new `_metadata` bytes; copying the files is the caller's job, so
/// the same plan serves a store (with its catalog) and a plain directory tool alike.
public struct SelfContainedPlan: Sendable {
    /// One file to copy into the new directory.
    public struct Copy: Sendable, Equatable {
        /// Where the file is now (resolved as `referencedFiles` resolves it).
        public let source: String
        /// Its name under the new directory.
        public let relativePath: String
        /// The length Flink's rule compares the file with (`kind` says whether exactly or at least).
        public let size: Int64
        public let kind: FileReference.Kind
    }

    /// How the new `_metadata` names the copies.
    public enum Naming: Sendable, Equatable {
        /// Relative handles (type 6): the directory can move, and the copy still restores. But Flink 2.3.0 and
        /// older re-anchor reused relative handles to each new checkpoint's directory after a CLAIM restore
        /// (FLINK-39964), so the checkpoints a CLAIM-restored job writes from such a copy are not restorable.
        case relative
        /// Absolute handles (type 2) to the copies in `directory`, where the copy will be: every file inside
        /// it and CLAIM-safe, but a move must rewrite the handles again.
        case absolute(directory: String)
    }

    public let copies: [Copy]
    /// The new `_metadata`, in the version the snapshot was read.
    public let metadata: [UInt8]
    public let rewrite: HandleRewrite

    /// - Parameters:
    ///   - metadataDirectory: where the snapshot's `_metadata` is now (relative handles resolve against it).
    ///   - pathMap: where its absolute handles' files are now.
    ///
    /// Files keep their own names; two different files with one name (e.g. `000042.sst` of two jobs) get a
    /// numbered prefix. File-merging segments are refused: Flink names a segment's physical file by absolute
    /// path only, so no copy of them is relocatable.
    public static func make(
        _ snapshot: CheckpointMetadata, metadataDirectory: String, pathMap: PathMap = .identity,
        naming: Naming = .relative
    ) throws -> SelfContainedPlan {
        let references = snapshot.referencedFiles(metadataDirectory: metadataDirectory, pathMap: pathMap)
        if let segment = references.first(where: { $0.kind == .mergedSegments }) {
            throw HandleRewriteError(
                file: segment.path,
                reason: "it holds file-merging segments, which Flink names by absolute path only; the copy would not be relocatable")
        }
        var copies: [Copy] = []
        var taken = Set<String>()
        // The same file can be named twice with two size rules (e.g. a changelog file also read whole): one copy.
        var named: [String: String] = [:]
        for reference in references {
            if let name = named[reference.path] {
                copies.append(Copy(source: reference.path, relativePath: name, size: reference.size, kind: reference.kind))
                continue
            }
            let base = reference.path.split(separator: "/").last.map(String.init) ?? "file"
            var name = sanitized(base)
            var attempt = 1
            while taken.contains(name) {
                name = "\(attempt)-\(sanitized(base))"
                attempt += 1
            }
            taken.insert(name)
            named[reference.path] = name
            copies.append(Copy(source: reference.path, relativePath: name, size: reference.size, kind: reference.kind))
        }
        let mapping = Dictionary(
            copies.map { copy -> (String, HandleLocation) in
                switch naming {
                case .relative: (copy.source, .relative(copy.relativePath))
                case .absolute(let directory): (copy.source, .localFile(directory + "/" + copy.relativePath))
                }
            }, uniquingKeysWith: { a, _ in a })
        let (bytes, rewrite) = try HandleRewrite.rewrittenMetadata(
            snapshot, metadataDirectory: metadataDirectory, pathMap: pathMap, mapping: mapping)
        return SelfContainedPlan(copies: copies, metadata: bytes, rewrite: rewrite)
    }

    /// A name `checkRelative` accepts: no `:` or `\` (Flink's Path would misread them), never `.`, `..` or
    /// `_metadata` (which the copy's own file takes).
    private static func sanitized(_ name: String) -> String {
        let cleaned = String(name.map { $0 == ":" || $0 == "\\" ? "_" : $0 })
        switch cleaned {
        case "", ".", "..", "_metadata": return "file-" + String(cleaned.map { $0 == "." ? "_" : $0 })
        default: return cleaned
        }
    }
}
