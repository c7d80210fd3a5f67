/// Decodes state handles: the recursive, type-byte-tagged part of `_metadata`.
///
/// Flink reads a handle by position: the same type byte means the same layout everywhere, but each
/// position (stream, keyed, operator, channel) accepts only some codes and rejects the rest. This
/// decoder mirrors those per-position rules so that a file Flink would refuse is refused here too,
/// with the offset of the offending byte.
struct HandleDecoder {
    /// Deepest nesting accepted. Real files nest at most 3 deep (changelog → keyed → stream); the
    /// cap only exists so that a forged chain of nested handles cannot exhaust the stack.
    static let maximumDepth = 16

    let version: Int

    typealias Code = StateHandleCode

    /// Renders a rejected type byte, naming it when it is a valid code used in the wrong place.
    private static func describe(_ code: UInt8) -> String {
        if let name = Code.name(code) { return "\(hex(code)) (\(name), not allowed here)" }
        return hex(code)
    }

    private static func checkDepth(_ depth: Int, _ reader: ByteReader) throws(MetadataError) {
        guard depth <= maximumDepth else {
            throw reader.error("state handles nested at most \(maximumDepth) deep", found: "deeper nesting")
        }
    }

    // MARK: - Stream handles

    /// `deserializeStreamStateHandle`: codes 0, 1, 2, 3, 6, 15, 16.
    func streamHandle(_ reader: inout ByteReader, depth: Int) throws(MetadataError) -> StateHandle? {
        try Self.checkDepth(depth, reader)
        let start = reader.offset
        let code = try reader.u8("a stream state handle type byte (0, 1, 2, 3, 6, 15 or 16)")
        switch code {
        case Code.null:
            return nil
        case Code.fileStream:
            let size = try reader.int64("the file handle's state size")
            let path = try reader.utf("the file handle's path")
            return .file(path: path, size: size)
        case Code.byteStream:
            let name = try reader.utf("the byte stream handle's name")
            let size = try reader.count("the byte stream handle's data length", minimumElementSize: 1)
            let data = Array(try reader.bytes(size, "the byte stream handle's data"))
            return .byteStream(name: name, data: data)
        case Code.relativeStream:
            let path = try reader.utf("the relative file handle's path")
            let size = try reader.int64("the relative file handle's state size")
            return .relativeFile(relativePath: path, size: size)
        case Code.keyGroups:
            return .keyGroups(try keyGroups(&reader, encoding: .legacy, depth: depth))
        case Code.segmentFile:
            return .fileSegment(try segment(&reader))
        case Code.emptySegmentFile:
            return .emptyFileSegment
        default:
            throw reader.error(
                at: start, "a stream state handle type byte (0, 1, 2, 3, 6, 15 or 16)", found: Self.describe(code))
        }
    }

    private func segment(_ reader: inout ByteReader) throws(MetadataError) -> FileSegmentHandle {
        let startPosition = try reader.int64("the segment's start position")
        let size = try reader.int64("the segment's state size")
        let scopeOffset = reader.offset
        let scope: FileSegmentHandle.Scope
        switch try reader.int32("the segment's scope ordinal") {
        case 0: scope = .exclusive
        case 1: scope = .shared
        case let other:
            throw reader.error(at: scopeOffset, "a segment scope ordinal (0 exclusive, 1 shared)", found: "\(other)")
        }
        let path = try reader.utf("the segment's physical file path")
        let logicalFileId = try reader.utf("the segment's logical file id")
        return FileSegmentHandle(
            startPosition: startPosition, size: size, scope: scope, physicalPath: path, logicalFileId: logicalFileId)
    }

    // MARK: - Keyed handles

    /// `deserializeKeyedStateHandle`: codes 0, 3, 5, 7–14.
    func keyedHandle(_ reader: inout ByteReader, depth: Int) throws(MetadataError) -> StateHandle? {
        try Self.checkDepth(depth, reader)
        let start = reader.offset
        let expected = "a keyed state handle type byte (0, 3, 5 or 7–14)"
        let code = try reader.u8(expected)
        switch code {
        case Code.null:
            return nil
        case Code.keyGroups:
            return .keyGroups(try keyGroups(&reader, encoding: .legacy, depth: depth))
        case Code.keyGroupsV2:
            return .keyGroups(try keyGroups(&reader, encoding: .v2, depth: depth))
        case Code.savepointKeyGroups:
            return .keyGroups(try keyGroups(&reader, encoding: .savepoint, depth: depth))
        case Code.incrementalKeyGroups, Code.incrementalKeyGroupsV2:
            return .incrementalRemote(
                try incremental(&reader, isV2: code == Code.incrementalKeyGroupsV2, depth: depth))
        case Code.changelog, Code.changelogV2:
            return .changelog(try changelog(&reader, isV2: code == Code.changelogV2, depth: depth))
        case Code.changelogByteIncrement:
            return .changelogInMemory(try inMemoryChangelog(&reader))
        case Code.changelogFileIncrement, Code.changelogFileIncrementV2:
            return .changelogFiles(
                try changelogFiles(&reader, isV2: code == Code.changelogFileIncrementV2, depth: depth))
        default:
            throw reader.error(at: start, expected, found: Self.describe(code))
        }
    }

    /// Start and count of a key-group range. Flink's writer only ever produces a non-negative
    /// count and, for non-empty ranges, a non-negative start with no overflow at the end.
    private func keyGroupRange(_ reader: inout ByteReader) throws(MetadataError) -> KeyGroupRange {
        let startOffset = reader.offset
        let start = Int(try reader.int32("the first key group"))
        let countOffset = reader.offset
        let count = Int(try reader.int32("the number of key groups"))
        guard count >= 0 else {
            throw reader.error(at: countOffset, "a non-negative number of key groups", found: "\(count)")
        }
        if count > 0 {
            guard start >= 0 else {
                throw reader.error(at: startOffset, "a non-negative first key group", found: "\(start)")
            }
            guard start + count - 1 <= Int(Int32.max) else {
                throw reader.error(
                    at: countOffset, "a key-group range that ends within Int32", found: "\(start) + \(count)")
            }
        }
        return KeyGroupRange(start: start, count: count)
    }

    private func keyGroups(
        _ reader: inout ByteReader, encoding: KeyGroupsHandle.Encoding, depth: Int
    ) throws(MetadataError) -> KeyGroupsHandle {
        let countOffset = reader.offset + 4
        let range = try keyGroupRange(&reader)
        try reader.ensureFits(range.count, elementSize: 8, "one 8-byte offset per key group", countOffset: countOffset)
        var offsets: [Int64] = []
        offsets.reserveCapacity(range.count)
        for _ in 0..<range.count { offsets.append(try reader.int64("a key-group offset")) }
        let delegate = try streamHandle(&reader, depth: depth + 1)
        let id = encoding == .v2 ? try reader.utf("the state handle id") : nil
        return KeyGroupsHandle(
            encoding: encoding, keyGroupRange: range, offsets: offsets, delegate: delegate, stateHandleId: id)
    }

    private func incremental(
        _ reader: inout ByteReader, isV2: Bool, depth: Int
    ) throws(MetadataError) -> IncrementalRemoteHandle {
        let checkpointId = try reader.int64("the incremental handle's checkpoint id")
        let backend = try reader.utf("the backend identifier")
        let range = try keyGroupRange(&reader)
        let checkpointedSize = isV2 ? try reader.int64("the checkpointed size") : nil
        let metadata = try streamHandle(&reader, depth: depth + 1)
        let shared = try handleAndLocalPathList(&reader, "shared state", depth: depth)
        let privateState = try handleAndLocalPathList(&reader, "private state", depth: depth)
        let id = isV2 ? try reader.utf("the state handle id") : nil
        return IncrementalRemoteHandle(
            checkpointId: checkpointId, backendIdentifier: backend, keyGroupRange: range,
            checkpointedSize: checkpointedSize, metadata: metadata, sharedState: shared,
            privateState: privateState, stateHandleId: id)
    }

    private func handleAndLocalPathList(
        _ reader: inout ByteReader, _ what: String, depth: Int
    ) throws(MetadataError) -> [HandleAndLocalPath] {
        // Each entry is at least a 2-byte string length and a 1-byte type code.
        let count = try reader.count("the number of \(what) entries", minimumElementSize: 3)
        var entries: [HandleAndLocalPath] = []
        for _ in 0..<count {
            let localPath = try reader.utf("a \(what) entry's local path")
            let handle = try streamHandle(&reader, depth: depth + 1)
            entries.append(HandleAndLocalPath(localPath: localPath, handle: handle))
        }
        return entries
    }

    private func changelog(
        _ reader: inout ByteReader, isV2: Bool, depth: Int
    ) throws(MetadataError) -> ChangelogBackendHandle {
        let range = try keyGroupRange(&reader)
        let checkpointedSize = try reader.int64("the checkpointed size")
        let materializedCount = try reader.count("the number of materialized handles", minimumElementSize: 1)
        var materialized: [StateHandle] = []
        for _ in 0..<materializedCount {
            if let handle = try keyedHandle(&reader, depth: depth + 1) { materialized.append(handle) }
        }
        let tailCount = try reader.count("the number of non-materialized handles", minimumElementSize: 1)
        var tail: [StateHandle] = []
        for _ in 0..<tailCount {
            let start = reader.offset
            guard let handle = try keyedHandle(&reader, depth: depth + 1) else { continue }
            // Flink casts these to ChangelogStateHandle, so anything else fails there.
            switch handle {
            case .changelogInMemory, .changelogFiles: tail.append(handle)
            default:
                throw reader.error(
                    at: start, "a changelog handle (type 9, 10 or 13) in the non-materialized part",
                    found: "another keyed handle")
            }
        }
        let materializationId = try reader.int64("the materialization id")
        let checkpointId = isV2 ? try reader.int64("the changelog handle's checkpoint id") : materializationId
        let id = try reader.utf("the state handle id")
        return ChangelogBackendHandle(
            encoding: isV2 ? .v2 : .legacy, keyGroupRange: range, checkpointedSize: checkpointedSize, materialized: materialized,
            nonMaterialized: tail, materializationId: materializationId, checkpointId: checkpointId,
            stateHandleId: id)
    }

    private func inMemoryChangelog(_ reader: inout ByteReader) throws(MetadataError) -> InMemoryChangelogHandle {
        let range = try keyGroupRange(&reader)
        let from = try reader.int64("the first sequence number")
        let to = try reader.int64("the last sequence number")
        // Each change is at least a key group and a length.
        let count = try reader.count("the number of changes", minimumElementSize: 8)
        var changes: [InMemoryChangelogHandle.Change] = []
        for _ in 0..<count {
            let keyGroup = try reader.int32("a change's key group")
            let size = try reader.count("a change's length", minimumElementSize: 1)
            changes.append(.init(keyGroup: keyGroup, data: Array(try reader.bytes(size, "a change's bytes"))))
        }
        let id = try reader.utf("the state handle id")
        return InMemoryChangelogHandle(
            keyGroupRange: range, fromSequenceNumber: from, toSequenceNumber: to, changes: changes,
            stateHandleId: id)
    }

    private func changelogFiles(
        _ reader: inout ByteReader, isV2: Bool, depth: Int
    ) throws(MetadataError) -> ChangelogFilesHandle {
        let range = try keyGroupRange(&reader)
        let count = try reader.count("the number of changelog file parts", minimumElementSize: 9)
        var parts: [ChangelogFilesHandle.Part] = []
        for _ in 0..<count {
            let offset = try reader.int64("a changelog part's offset")
            let handle = try streamHandle(&reader, depth: depth + 1)
            parts.append(ChangelogFilesHandle.Part(offset: offset, handle: handle))
        }
        let stateSize = try reader.int64("the state size")
        let checkpointedSize = try reader.int64("the checkpointed size")
        let id = try reader.utf("the state handle id")
        let storage = isV2 ? try reader.utf("the storage identifier") : "filesystem"
        return ChangelogFilesHandle(
            encoding: isV2 ? .v2 : .legacy, keyGroupRange: range, parts: parts, stateSize: stateSize, checkpointedSize: checkpointedSize,
            stateHandleId: id, storageIdentifier: storage)
    }

    // MARK: - Operator handles

    /// `deserializeOperatorStateHandle`: codes 0, 4, 17.
    func operatorHandle(_ reader: inout ByteReader, depth: Int) throws(MetadataError) -> StateHandle? {
        try Self.checkDepth(depth, reader)
        let start = reader.offset
        let expected = "an operator state handle type byte (0, 4 or 17)"
        let code = try reader.u8(expected)
        switch code {
        case Code.null:
            return nil
        case Code.partitionableOperator, Code.segmentPartitionableOperator:
            break
        default:
            throw reader.error(at: start, expected, found: Self.describe(code))
        }
        // Each entry is at least a name length, a mode byte and an offset count.
        let count = try reader.count("the number of named operator states", minimumElementSize: 7)
        var states: [OperatorStateHandle.NamedState] = []
        for _ in 0..<count {
            let name = try reader.utf("an operator state's name")
            let modeOffset = reader.offset
            let mode: OperatorStateHandle.DistributionMode
            switch try reader.u8("a distribution mode ordinal") {
            case 0: mode = .splitDistribute
            case 1: mode = .union
            case 2: mode = .broadcast
            case let other:
                throw reader.error(
                    at: modeOffset, "a distribution mode ordinal (0 split, 1 union, 2 broadcast)", found: hex(other))
            }
            let offsetCount = try reader.count("the number of partition offsets", minimumElementSize: 8)
            var offsets: [Int64] = []
            offsets.reserveCapacity(offsetCount)
            for _ in 0..<offsetCount { offsets.append(try reader.int64("a partition offset")) }
            states.append(OperatorStateHandle.NamedState(name: name, mode: mode, offsets: offsets))
        }
        var merging: OperatorStateHandle.FileMergingDirectories?
        if code == Code.segmentPartitionableOperator {
            let taskOwned = try reader.utf("the task-owned directory")
            let shared = try reader.utf("the shared directory")
            let isEmpty = try reader.bool("the is-empty flag")
            merging = .init(taskOwnedDirectory: taskOwned, sharedDirectory: shared, isEmpty: isEmpty)
        }
        let delegateOffset = reader.offset
        let delegate = try streamHandle(&reader, depth: depth + 1)
        if merging != nil {
            // Flink checks `instanceof SegmentFileStateHandle` (which the empty segment is too).
            switch delegate {
            case .fileSegment?, .emptyFileSegment?: break
            default:
                throw reader.error(
                    at: delegateOffset, "a file segment handle (15 or 16) as a file-merging operator's delegate",
                    found: delegate == nil ? "the null handle" : "another stream handle")
            }
        }
        return .operatorState(OperatorStateHandle(states: states, fileMerging: merging, delegate: delegate))
    }

    // MARK: - Channel state

    /// One input-channel or result-subpartition handle. Versions 3–5 have no type byte; version 6
    /// tags each handle so that merged handles (one delegate for many channels) can exist.
    func channelHandle(
        _ reader: inout ByteReader, direction: ChannelStateHandle.Direction, depth: Int
    ) throws(MetadataError) -> StateHandle {
        guard version >= 6 else { return .channel(try singleChannel(&reader, direction: direction, depth: depth)) }
        let start = reader.offset
        let (single, merged): (UInt8, UInt8) = direction == .input ? (1, 3) : (2, 4)
        let expected =
            direction == .input
            ? "an input channel state handle type byte (1 or 3)"
            : "a result subpartition state handle type byte (2 or 4)"
        let code = try reader.u8(expected)
        switch code {
        case single:
            return .channel(try singleChannel(&reader, direction: direction, depth: depth))
        case merged:
            let subtask = Int(try reader.int32("the channel handle's subtask index"))
            let size = try reader.int64("the channel handle's state size")
            let delegate = try streamHandle(&reader, depth: depth + 1)
            let blob = try reader.count("the serialized channel offsets length", minimumElementSize: 1)
            let offsets = Array(try reader.bytes(blob, "the serialized channel offsets"))
            return .channel(
                ChannelStateHandle(
                    direction: direction, subtaskIndex: subtask, layout: .merged(serializedOffsets: offsets),
                    stateSize: size, delegate: delegate))
        default:
            throw reader.error(at: start, expected, found: hex(code))
        }
    }

    private func singleChannel(
        _ reader: inout ByteReader, direction: ChannelStateHandle.Direction, depth: Int
    ) throws(MetadataError) -> ChannelStateHandle {
        let subtask = Int(try reader.int32("the channel handle's subtask index"))
        let first = Int(try reader.int32(direction == .input ? "the input gate index" : "the partition index"))
        let second = Int(
            try reader.int32(direction == .input ? "the input channel index" : "the subpartition index"))
        let count = try reader.count("the number of channel offsets", minimumElementSize: 8)
        var offsets: [Int64] = []
        offsets.reserveCapacity(count)
        for _ in 0..<count { offsets.append(try reader.int64("a channel offset")) }
        let size = try reader.int64("the channel handle's state size")
        let delegate = try streamHandle(&reader, depth: depth + 1)
        return ChannelStateHandle(
            direction: direction, subtaskIndex: subtask,
            layout: .single(gateOrPartition: first, channelOrSubpartition: second, offsets: offsets),
            stateSize: size, delegate: delegate)
    }
}

/// The type bytes of `MetadataV2V3SerializerBase`: one namespace shared by every handle position.
///
/// Public so that the writer (its own module) uses the very constants the reader checks against.
public enum StateHandleCode {
    public static let null: UInt8 = 0
    public static let byteStream: UInt8 = 1
    public static let fileStream: UInt8 = 2
    public static let keyGroups: UInt8 = 3
    public static let partitionableOperator: UInt8 = 4
    public static let incrementalKeyGroups: UInt8 = 5
    public static let relativeStream: UInt8 = 6
    public static let savepointKeyGroups: UInt8 = 7
    public static let changelog: UInt8 = 8
    public static let changelogByteIncrement: UInt8 = 9
    public static let changelogFileIncrement: UInt8 = 10
    public static let incrementalKeyGroupsV2: UInt8 = 11
    public static let keyGroupsV2: UInt8 = 12
    public static let changelogFileIncrementV2: UInt8 = 13
    public static let changelogV2: UInt8 = 14
    public static let segmentFile: UInt8 = 15
    public static let emptySegmentFile: UInt8 = 16
    public static let segmentPartitionableOperator: UInt8 = 17

    public static func name(_ code: UInt8) -> String? {
        switch code {
        case 0: "the null handle"
        case 1: "a byte stream handle"
        case 2: "a file handle"
        case 3: "a key groups handle"
        case 4: "an operator state handle"
        case 5: "an incremental keyed handle (legacy)"
        case 6: "a relative file handle"
        case 7: "a savepoint key groups handle"
        case 8: "a changelog handle (legacy)"
        case 9: "an in-memory changelog handle"
        case 10: "a changelog file handle (legacy)"
        case 11: "an incremental keyed handle"
        case 12: "a key groups handle (v2)"
        case 13: "a changelog file handle"
        case 14: "a changelog handle"
        case 15: "a file segment handle"
        case 16: "an empty file segment handle"
        case 17: "a file-merging operator state handle"
        default: nil
        }
    }
}
