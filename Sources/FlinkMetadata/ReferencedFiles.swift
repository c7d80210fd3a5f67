/// A file a snapshot needs, at the place it should be found now.
public struct FileReference: Hashable, Sendable {
    public enum Kind: Hashable, Sendable {
        /// A file of its own (file and relative-file handles): `size` is its exact length.
        case wholeFile
        /// A file-merging physical file shared with other snapshots (segment handles): `size` is
        /// the end of the furthest segment this snapshot reads, so the file must be at least that long.
        case mergedSegments
        /// A changelog (DSTL) file, named by a file handle inside a changelog handle: `size` is the
        /// handle's, and the file is longer (Flink's uploader writes a compression flag the handle does
        /// not count); Flink seeks to offsets in it and checks no length, so it must be at least `size`.
        case changelog

        /// Whether the file must be exactly `size` long; otherwise it must be at least `size`.
        public var isExact: Bool { self == .wholeFile }
    }

    /// Absolute local path after resolution and path mapping. A URI that is not on the local file
    /// system (e.g. `s3://…`, with no rule rewriting it) is kept as written.
    public let path: String
    public let size: Int64
    public let kind: Kind

    public init(path: String, size: Int64, kind: Kind = .wholeFile) {
        self.path = path
        self.size = size
        self.kind = kind
    }
}

extension CheckpointMetadata {
    /// Every file Flink would open to restore this snapshot, resolved as Flink resolves it.
    ///
    /// Absolute handles are taken as written (a `file:` scheme stripped) and passed through
    /// `pathMap`; relative handles are resolved against `metadataDirectory`, the directory that
    /// holds `_metadata` now, and are not mapped (that directory already is the current location).
    /// Inline byte-stream handles are not files, even though their names look like paths.
    /// Each file carries the length rule Flink applies to it (`Kind`): segments and changelog parts
    /// of one file become one reference reaching as far as the furthest of them.
    /// The result is deduplicated and sorted by path.
    public func referencedFiles(metadataDirectory: String, pathMap: PathMap) -> [FileReference] {
        var whole = Set<FileReference>()
        var reaches: [FileReference.Kind: [String: Int64]] = [:]
        func atLeast(_ kind: FileReference.Kind, _ path: String, _ size: Int64) {
            reaches[kind, default: [:]][path] = max(reaches[kind]?[path] ?? 0, size)
        }
        // A file handle means a different thing inside a changelog handle (a DSTL file, read by offset), so
        // the walk carries whether it is below one.
        func walk(_ handle: StateHandle, inChangelog: Bool) {
            switch handle {
            case .file(let path, let size):
                if inChangelog {
                    atLeast(.changelog, pathMap.map(path), size)
                } else {
                    whole.insert(FileReference(path: pathMap.map(path), size: size))
                }
            case .relativeFile(let relativePath, let size):
                let path = FlinkPath.resolve(relativePath, against: metadataDirectory)
                if inChangelog {
                    atLeast(.changelog, path, size)
                } else {
                    whole.insert(FileReference(path: path, size: size))
                }
            case .fileSegment(let segment):
                let (end, overflow) = segment.startPosition.addingReportingOverflow(segment.size)
                atLeast(.mergedSegments, pathMap.map(segment.physicalPath), overflow ? Int64.max : end)
            default:
                break
            }
            let below: Bool
            if case .changelogFiles = handle { below = true } else { below = inChangelog }
            for child in handle.children { walk(child, inChangelog: below) }
        }
        for operatorState in operators {
            if let coordinator = operatorState.coordinatorState { walk(coordinator, inChangelog: false) }
            for subtask in operatorState.subtasks {
                for handle in subtask.handles { walk(handle, inChangelog: false) }
            }
        }
        let atLeastFiles = reaches.flatMap { kind, ends in
            ends.map { FileReference(path: $0.key, size: $0.value, kind: kind) }
        }
        return (Array(whole) + atLeastFiles).sorted {
            ($0.path, $0.size, $0.kind.isExact ? 0 : 1) < ($1.path, $1.size, $1.kind.isExact ? 0 : 1)
        }
    }

    /// Number of inline (byte-stream) handles in operator state, coordinator state included.
    /// Master states and inline changelog changes are inline too but are not byte-stream handles,
    /// so they are not counted, matching what Flink's `ByteStreamStateHandle` count would be.
    public var inlineHandleCount: Int {
        var count = 0
        visitHandles { if case .byteStream = $0 { count += 1 } }
        return count
    }

    /// Total size of the data held in those inline handles.
    public var inlineBytes: Int {
        var total = 0
        visitHandles { if case .byteStream(_, let data) = $0 { total += data.count } }
        return total
    }

    /// Total subtask entries across operators, finished subtasks included.
    public var subtaskCount: Int {
        operators.reduce(0) { $0 + $1.subtasks.count }
    }

    /// Calls `visit` for every handle in the snapshot, containers before their contents: each
    /// operator's coordinator state, then each subtask's handles in file order.
    public func visitHandles(_ visit: (StateHandle) throws -> Void) rethrows {
        func walk(_ handle: StateHandle) throws {
            try visit(handle)
            for child in handle.children { try walk(child) }
        }
        for operatorState in operators {
            if let coordinator = operatorState.coordinatorState { try walk(coordinator) }
            for subtask in operatorState.subtasks {
                for handle in subtask.handles { try walk(handle) }
            }
        }
    }
}

extension StateHandle {
    /// The file Flink opens for this handle itself (not its children), resolved exactly as
    /// `referencedFiles(metadataDirectory:pathMap:)` resolves it: absolute paths through `pathMap`, relative
    /// ones against `metadataDirectory`, a segment's physical file through `pathMap`. `nil` for handles that
    /// are not files (inline state, containers, the empty segment).
    public func resolvedFilePath(metadataDirectory: String, pathMap: PathMap) -> String? {
        switch self {
        case .file(let path, _): return pathMap.map(path)
        case .relativeFile(let relativePath, _): return FlinkPath.resolve(relativePath, against: metadataDirectory)
        case .fileSegment(let segment): return pathMap.map(segment.physicalPath)
        default: return nil
        }
    }
}
