/// A file a snapshot needs, at the place it should be found now.
public struct FileReference: Hashable, Sendable {
    public enum Kind: Hashable, Sendable {
        /// A file of its own (file and relative-file handles): `size` is its exact length.
        case wholeFile
        /// A file-merging physical file shared with other snapshots (segment handles): `size` is
        /// the end of the furthest segment this snapshot reads, so the file must be at least that long.
        case mergedSegments
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
    /// The result is deduplicated and sorted by path.
    public func referencedFiles(metadataDirectory: String, pathMap: PathMap) -> [FileReference] {
        var whole = Set<FileReference>()
        var segmentEnds: [String: Int64] = [:]
        visitHandles { handle in
            switch handle {
            case .file(let path, let size):
                whole.insert(FileReference(path: pathMap.map(path), size: size))
            case .relativeFile(let relativePath, let size):
                whole.insert(
                    FileReference(path: FlinkPath.resolve(relativePath, against: metadataDirectory), size: size))
            case .fileSegment(let segment):
                let path = pathMap.map(segment.physicalPath)
                let (end, overflow) = segment.startPosition.addingReportingOverflow(segment.size)
                let reach = overflow ? Int64.max : end
                segmentEnds[path] = max(segmentEnds[path] ?? 0, reach)
            default:
                break
            }
        }
        let segments = segmentEnds.map { FileReference(path: $0.key, size: $0.value, kind: .mergedSegments) }
        return (Array(whole) + segments).sorted {
            ($0.path, $0.size) < ($1.path, $1.size)
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
        visitHandles { if case .byteStream(_, let size) = $0 { total += size } }
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
