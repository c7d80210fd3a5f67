import FlinkMetadata

/// How to repair a snapshot whose relative handles Flink resolves to the wrong directory, while the files
/// exist elsewhere with the right size.
///
/// The case it exists for is FLINK-39964 (Flink 2.3.0 and older): after a CLAIM restore from a snapshot with
/// relative handles (a NATIVE savepoint, or a self-contained copy), the restored job's checkpoints keep the
/// reused files' relative handles, and Flink resolves them against each new `chk-N` — where the files never
/// were; they are still in the restored snapshot's directory. The repair names each such file by the absolute
/// path where it is, which Flink opens whatever directory the `_metadata` is in.
///
/// Pure: the caller says which directories to look in and how big a file is (`fileSize`); the plan reads
/// nothing itself, so it is the same for a store and for a plain directory.
public struct RepairPlan: Sendable {
    /// One handle that will name its file where it is.
    public struct Fix: Sendable, Equatable {
        /// Where Flink looks now (the relative handle resolved against the snapshot's directory).
        public let resolvedPath: String
        /// Where the file is: `searchDirectory/relativePath`, with the length the snapshot needs.
        public let foundAt: String
        public let size: Int64
    }

    /// Handles that will be rewritten, sorted by `resolvedPath`.
    public let fixes: [Fix]
    /// Files the snapshot needs that are neither where Flink looks nor in any search directory (with the
    /// length Flink's rule asks). Non-empty means the repair is refused: those bytes are gone.
    public let missing: [FileReference]
    /// The repaired `_metadata` (same version as read); `nil` when nothing needs fixing or something is missing.
    public let metadata: [UInt8]?

    /// - Parameters:
    ///   - metadataDirectory: where the snapshot's `_metadata` is now.
    ///   - pathMap: where absolute handles' files are now.
    ///   - searchDirectories: where a misplaced file may be, in order of preference (e.g. the directory of
    ///     the snapshot the job was restored from); the first with a file of the right length wins.
    ///   - fileSize: the length of the file at an absolute local path, `nil` when there is none.
    ///   - flinkLocation: how Flink names a local path found here (by default `file:` + the path; a store that
    ///     Flink sees at another path maps it back, the inverse of `pathMap`).
    public static func make(
        _ snapshot: CheckpointMetadata, metadataDirectory: String, pathMap: PathMap = .identity,
        searchDirectories: [String], fileSize: (String) -> Int64?,
        flinkLocation: (String) -> HandleLocation = HandleLocation.localFile
    ) throws -> RepairPlan {
        // Each relative handle's own path, keyed by where it resolves.
        var relativeOf: [String: String] = [:]
        snapshot.visitHandles { handle in
            if case .relativeFile(let relative, _) = handle,
               let resolved = handle.resolvedFilePath(metadataDirectory: metadataDirectory, pathMap: pathMap) {
                relativeOf[resolved] = relative
            }
        }
        func fits(_ path: String, _ reference: FileReference) -> Bool {
            guard let size = fileSize(path) else { return false }
            return reference.kind.isExact ? size == reference.size : size >= reference.size
        }
        var fixes: [String: Fix] = [:]
        var missing: [FileReference] = []
        for reference in snapshot.referencedFiles(metadataDirectory: metadataDirectory, pathMap: pathMap) {
            if fits(reference.path, reference) { continue }
            // Only relative handles can have been resolved against the wrong directory.
            guard let relative = relativeOf[reference.path],
                  let found = searchDirectories.lazy.map({ joined($0, relative) }).first(where: { fits($0, reference) })
            else {
                missing.append(reference)
                continue
            }
            // One file may be needed under two rules (e.g. exact and at-least): the exact one decides, and both fit.
            fixes[reference.path] = Fix(resolvedPath: reference.path, foundAt: found, size: reference.size)
        }
        let sortedFixes = fixes.values.sorted { $0.resolvedPath < $1.resolvedPath }
        guard missing.isEmpty, !sortedFixes.isEmpty else {
            return RepairPlan(fixes: sortedFixes, missing: missing, metadata: nil)
        }
        let mapping = Dictionary(uniqueKeysWithValues: sortedFixes.map { ($0.resolvedPath, flinkLocation($0.foundAt)) })
        let (bytes, _) = try HandleRewrite.rewrittenMetadata(
            snapshot, metadataDirectory: metadataDirectory, pathMap: pathMap, mapping: mapping)
        return RepairPlan(fixes: sortedFixes, missing: missing, metadata: bytes)
    }

    private static func joined(_ directory: String, _ relative: String) -> String {
        directory.hasSuffix("/") ? directory + relative : directory + "/" + relative
    }
}
