/// One state handle from `_metadata`: a reference to state bytes, possibly nested.
///
/// Flink writes every handle as a type byte from one shared namespace (0–17, see
/// `MetadataV2V3SerializerBase`) followed by that type's fields. Each case keeps every field Flink
/// wrote, inline payloads included, so that `FlinkMetadataWriter` can write the same bytes back:
/// a value is the whole handle, not a summary of it. Inline payloads are bounded by Flink's inline
/// threshold (20 KB by default) and by the file itself, so keeping them costs at most the file's size.
///
/// The null handle (type 0) is represented by `nil` at the place that allowed it.
public indirect enum StateHandle: Sendable, Equatable {
    // MARK: Stream handles: where bytes are read from

    /// Type 2: an absolute file, named exactly as Flink wrote it (usually a URI such as `file:/…`).
    case file(path: String, size: Int64)
    /// Type 6: a file inside the directory that holds `_metadata`; resolved against that directory.
    case relativeFile(relativePath: String, size: Int64)
    /// Type 1: state small enough to live inside `_metadata` itself. `name` looks like a path but no
    /// such file was ever written; `data` is the state itself.
    case byteStream(name: String, data: [UInt8])
    /// Type 15: a range of a physical file shared by many logical files (unified file merging, 1.20+).
    case fileSegment(FileSegmentHandle)
    /// Type 16: a file-merging placeholder with no bytes behind it.
    case emptyFileSegment

    // MARK: Keyed state handles

    /// Types 3, 7 and 12: key-group offsets into one delegate stream (heap/HashMap backend, canonical savepoints).
    case keyGroups(KeyGroupsHandle)
    /// Types 5 and 11: RocksDB native snapshot: SST and misc files plus a metadata stream.
    case incrementalRemote(IncrementalRemoteHandle)
    /// Types 8 and 14: changelog backend: materialized handles plus a changelog tail.
    case changelog(ChangelogBackendHandle)
    /// Type 9: changelog changes stored inline.
    case changelogInMemory(InMemoryChangelogHandle)
    /// Types 10 and 13: changelog changes stored in DSTL files.
    case changelogFiles(ChangelogFilesHandle)

    // MARK: Operator and channel state

    /// Types 4 and 17: operator (non-keyed) state: named partitions of one delegate stream.
    case operatorState(OperatorStateHandle)
    /// Unaligned-checkpoint in-flight data of one input channel or result subpartition.
    case channel(ChannelStateHandle)
}

/// `KeyGroupRange.of(start, start + count - 1)`; Flink writes the start and the count.
public struct KeyGroupRange: Sendable, Equatable {
    public var start: Int
    public var count: Int
}

/// Types 3, 7 and 12 share a layout and differ only in which id fields follow.
public struct KeyGroupsHandle: Sendable, Equatable {
    public enum Encoding: Sendable, Equatable {
        /// Type 3: pre-1.17 keyed handle, or a `KeyGroupsStateHandle` nested where a stream handle goes.
        case legacy
        /// Type 12: checkpoint of the heap backend; carries a state handle id.
        case v2
        /// Type 7: any savepoint of the heap backend, and canonical savepoints; no id.
        case savepoint
    }

    public var encoding: Encoding
    public var keyGroupRange: KeyGroupRange
    /// Offset of each key group inside `delegate`, one per key group in the range.
    public var offsets: [Int64]
    public var delegate: StateHandle?
    /// Present for type 12 only.
    public var stateHandleId: String?
}

/// A file a RocksDB instance needs, with the name it has on the task manager's local disk.
public struct HandleAndLocalPath: Sendable, Equatable {
    /// Local file name, e.g. `000042.sst`, `MANIFEST-000004`, `CURRENT`.
    public var localPath: String
    public var handle: StateHandle?
}

/// Types 5 and 11 (`IncrementalRemoteKeyedStateHandle`).
public struct IncrementalRemoteHandle: Sendable, Equatable {
    /// The checkpoint that produced this handle, which can be older than the snapshot holding it.
    public var checkpointId: Int64
    /// The RocksDB instance's UUID, as Flink wrote it.
    public var backendIdentifier: String
    public var keyGroupRange: KeyGroupRange
    /// Bytes persisted by this checkpoint; `nil` for type 5, which predates the field.
    public var checkpointedSize: Int64?
    public var metadata: StateHandle?
    /// Files that later checkpoints may reuse (refcounted by Flink across snapshots).
    public var sharedState: [HandleAndLocalPath]
    /// Files owned by this snapshot alone.
    public var privateState: [HandleAndLocalPath]
    /// Present for type 11 only.
    public var stateHandleId: String?
}

/// Types 8 and 14 (`ChangelogStateBackendHandle`).
public struct ChangelogBackendHandle: Sendable, Equatable {
    public enum Encoding: Sendable, Equatable {
        /// Type 8: no separate checkpoint id (it reads as the materialization id).
        case legacy
        /// Type 14.
        case v2
    }

    /// Which of the two layouts Flink wrote; a type-14 handle can have equal ids too, so the ids alone
    /// cannot tell.
    public var encoding: Encoding
    public var keyGroupRange: KeyGroupRange
    public var checkpointedSize: Int64
    /// Materialized state (any keyed handle). Null entries are dropped, as Flink does.
    public var materialized: [StateHandle]
    /// Changelog tail (types 9, 10, 13). Null entries are dropped.
    public var nonMaterialized: [StateHandle]
    public var materializationId: Int64
    /// Equals `materializationId` for type 8, which did not store it separately.
    public var checkpointId: Int64
    public var stateHandleId: String
}

/// Type 9 (`InMemoryChangelogStateHandle`): state changes stored inline.
public struct InMemoryChangelogHandle: Sendable, Equatable {
    /// One `StateChange`: the key group it belongs to and its serialized bytes.
    public struct Change: Sendable, Equatable {
        public var keyGroup: Int32
        public var data: [UInt8]

        public init(keyGroup: Int32, data: [UInt8]) {
            self.keyGroup = keyGroup
            self.data = data
        }
    }

    public var keyGroupRange: KeyGroupRange
    public var fromSequenceNumber: Int64
    public var toSequenceNumber: Int64
    public var changes: [Change]
    public var stateHandleId: String

    public var changeCount: Int { changes.count }
    /// Total size of the inline change payloads.
    public var changeBytes: Int { changes.reduce(0) { $0 + $1.data.count } }
}

/// Types 10 and 13 (`ChangelogStateHandleStreamImpl`).
public struct ChangelogFilesHandle: Sendable, Equatable {
    public enum Encoding: Sendable, Equatable {
        /// Type 10: no storage identifier (it reads as `"filesystem"`).
        case legacy
        /// Type 13.
        case v2
    }

    public struct Part: Sendable, Equatable {
        public var offset: Int64
        public var handle: StateHandle?
    }

    /// Which of the two layouts Flink wrote; a type-13 handle can say `"filesystem"` too.
    public var encoding: Encoding
    public var keyGroupRange: KeyGroupRange
    public var parts: [Part]
    public var stateSize: Int64
    public var checkpointedSize: Int64
    public var stateHandleId: String
    /// `"filesystem"` for type 10, which predates the field.
    public var storageIdentifier: String
}

/// Type 15 (`SegmentFileStateHandle`).
public struct FileSegmentHandle: Sendable, Equatable {
    public enum Scope: Sendable, Equatable {
        case exclusive
        case shared
    }

    public var startPosition: Int64
    public var size: Int64
    public var scope: Scope
    /// The physical file, named as Flink wrote it (usually a URI).
    public var physicalPath: String
    public var logicalFileId: String
}

/// Types 4 and 17 (`OperatorStreamStateHandle`, `FileMergingOperatorStreamStateHandle`).
public struct OperatorStateHandle: Sendable, Equatable {
    /// `OperatorStateHandle.Mode`, stored by ordinal.
    public enum DistributionMode: Sendable, Equatable {
        case splitDistribute
        case union
        case broadcast
    }

    public struct NamedState: Sendable, Equatable {
        public var name: String
        public var mode: DistributionMode
        public var offsets: [Int64]
    }

    /// The managed directories a file-merging handle (type 17) keeps alive.
    public struct FileMergingDirectories: Sendable, Equatable {
        public var taskOwnedDirectory: String
        public var sharedDirectory: String
        public var isEmpty: Bool
    }

    public var states: [NamedState]
    /// Present for type 17 only.
    public var fileMerging: FileMergingDirectories?
    public var delegate: StateHandle?
}

/// In-flight data of one channel, written by unaligned checkpoints.
public struct ChannelStateHandle: Sendable, Equatable {
    public enum Direction: Sendable, Equatable {
        /// `InputChannelStateHandle`: data buffered at an input gate.
        case input
        /// `ResultSubpartitionStateHandle`: data buffered at an output subpartition.
        case output
    }

    public enum Layout: Sendable, Equatable {
        /// One channel's data. `gateOrPartition`/`channelOrSubpartition` identify the channel.
        case single(gateOrPartition: Int, channelOrSubpartition: Int, offsets: [Int64])
        /// V6 merged handle: many channels in one delegate, their offsets in Flink's own serialized form.
        case merged(serializedOffsets: [UInt8])
    }

    public var direction: Direction
    public var subtaskIndex: Int
    public var layout: Layout
    public var stateSize: Int64
    public var delegate: StateHandle?
}

extension StateHandle {
    /// The handles directly inside this one, for walking the tree without switching on every case.
    public var children: [StateHandle] {
        switch self {
        case .file, .relativeFile, .byteStream, .fileSegment, .emptyFileSegment, .changelogInMemory:
            return []
        case .keyGroups(let handle):
            return handle.delegate.map { [$0] } ?? []
        case .incrementalRemote(let handle):
            return [handle.metadata].compactMap { $0 }
                + handle.sharedState.compactMap(\.handle)
                + handle.privateState.compactMap(\.handle)
        case .changelog(let handle):
            return handle.materialized + handle.nonMaterialized
        case .changelogFiles(let handle):
            return handle.parts.compactMap(\.handle)
        case .operatorState(let handle):
            return handle.delegate.map { [$0] } ?? []
        case .channel(let handle):
            return handle.delegate.map { [$0] } ?? []
        }
    }

    /// Whether this handle is read from a file (as opposed to inline data or a container).
    public var isFileBacked: Bool {
        switch self {
        case .file, .relativeFile, .fileSegment: return true
        default: return false
        }
    }
}
