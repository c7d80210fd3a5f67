import FlinkMetadata

/// What makes a snapshot self-contained: every file it needs, copied under one new directory and named
/// relative to it (Flink's relocatable savepoint layout) or by absolute path there, and the `_metadata` that
/// names them so.
///
/// Pure: it decides names and writes the new `_metadata` bytes; copying the files is the caller's job, so
/// the same plan serves a store (with its catalog) and a plain directory tool alike.
public struct SelfContainedPlan: Sendable {
    /// One file to copy into the new directory: a whole file, or one file-merging segment of a physical file.
    public struct Copy: Sendable, Equatable {
        /// Where the file is now (resolved as `referencedFiles` resolves it); for a segment, its physical file.
        public let source: String
        /// Its name under the new directory.
        public let relativePath: String
        /// The length Flink's rule compares the file with (`kind` says whether exactly or at least); for a
        /// segment, the segment's length, which is exactly the length of the copy.
        public let size: Int64
        public let kind: FileReference.Kind
        /// For a segment: where its bytes start in `source`; the copy is the `size` bytes from there. Nil: the
        /// whole file.
        public let offset: Int64?

        public init(source: String, relativePath: String, size: Int64, kind: FileReference.Kind, offset: Int64? = nil) {
            self.source = source; self.relativePath = relativePath; self.size = size; self.kind = kind
            self.offset = offset
        }

        /// How long `source` must be at least (exactly, when `kind` is exact): a segment's end.
        public var requiredSourceLength: Int64 {
            guard let offset else { return size }
            let (end, overflow) = offset.addingReportingOverflow(size)
            return overflow ? .max : end
        }

        /// Whether a source of `length` bytes holds what the copy needs.
        public func accepts(sourceLength length: Int64) -> Bool {
            offset == nil && kind.isExact ? length == size : length >= requiredSourceLength
        }

        /// The rule the new `_metadata` gives the copy: a segment's copy is a file of its own, exactly its length.
        public var copiedKind: FileReference.Kind { offset == nil ? kind : .wholeFile }
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
    /// numbered prefix. Each file-merging segment (Flink names a segment's physical file by absolute path only)
    /// becomes a file of its own holding exactly the segment's bytes, named `<physical file>-<start>-<length>`, so
    /// two handles naming one segment share one copy; its handle becomes a file handle of the segment's length,
    /// a file-merging operator handle over it a plain one, and Flink's empty file-merging operator handles (no
    /// state, only the managed directories) are dropped. A restore then reads each segment's bytes from its own
    /// file, as it would have read them from the physical file at the segment's offset.
    public static func make(
        _ snapshot: CheckpointMetadata, metadataDirectory: String, pathMap: PathMap = .identity,
        naming: Naming = .relative
    ) throws -> SelfContainedPlan {
        let references = snapshot.referencedFiles(metadataDirectory: metadataDirectory, pathMap: pathMap)
        var segmentKeys = Set<SegmentKey>()
        snapshot.visitHandles { handle in
            guard case .fileSegment(let segment) = handle,
                  let path = handle.resolvedFilePath(metadataDirectory: metadataDirectory, pathMap: pathMap) else { return }
            segmentKeys.insert(SegmentKey(path: path, start: segment.startPosition, size: segment.size))
        }
        var copies: [Copy] = []
        var taken = Set<String>()
        func freeName(_ base: String) -> String {
            var name = sanitized(base)
            var attempt = 1
            while taken.contains(name) {
                name = "\(attempt)-\(sanitized(base))"
                attempt += 1
            }
            taken.insert(name)
            return name
        }
        func baseName(_ path: String) -> String { path.split(separator: "/").last.map(String.init) ?? "file" }
        // The same file can be named twice with two size rules (e.g. a changelog file also read whole): one copy.
        var named: [String: String] = [:]
        for reference in references where reference.kind != .mergedSegments {
            let name = named[reference.path] ?? freeName(baseName(reference.path))
            named[reference.path] = name
            copies.append(Copy(source: reference.path, relativePath: name, size: reference.size, kind: reference.kind))
        }
        var segmentNames: [SegmentKey: String] = [:]
        for key in segmentKeys.sorted() {
            let name = freeName("\(baseName(key.path))-\(key.start)-\(key.size)")
            segmentNames[key] = name
            copies.append(Copy(source: key.path, relativePath: name, size: key.size, kind: .mergedSegments, offset: key.start))
        }
        func location(_ name: String) -> HandleLocation {
            switch naming {
            case .relative: .relative(name)
            case .absolute(let directory): .localFile(directory + "/" + name)
            }
        }
        let (bytes, rewrite) = try HandleRewrite.rewrittenMetadata(
            snapshot, metadataDirectory: metadataDirectory, pathMap: pathMap, mapping: named.mapValues(location),
            segments: segmentNames.mapValues(location), unmerge: true)
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
