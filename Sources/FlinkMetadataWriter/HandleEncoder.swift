import FlinkMetadata

/// Writes state handles: the mirror of the reader's `HandleDecoder`.
///
/// Each position (stream, keyed, operator, channel) accepts only the handle kinds Flink's deserializer
/// accepts there; a value that puts another kind in that position is refused here rather than written as a
/// file Flink cannot load.
struct HandleEncoder {
    typealias Code = StateHandleCode

    /// The reader's nesting cap: a deeper value would be written but never read back.
    static let maximumDepth = 16

    let version: Int

    private static func checkDepth(_ depth: Int) throws(MetadataWriteError) {
        guard depth <= maximumDepth else {
            throw MetadataWriteError(
                expected: "state handles nested at most \(maximumDepth) deep", found: "deeper nesting")
        }
    }

    /// A short name of a handle's kind, for errors.
    private static func kind(_ handle: StateHandle) -> String {
        switch handle {
        case .file: "a file handle"
        case .relativeFile: "a relative file handle"
        case .byteStream: "a byte stream handle"
        case .fileSegment: "a file segment handle"
        case .emptyFileSegment: "an empty file segment handle"
        case .keyGroups: "a key groups handle"
        case .incrementalRemote: "an incremental keyed handle"
        case .changelog: "a changelog handle"
        case .changelogInMemory: "an in-memory changelog handle"
        case .changelogFiles: "a changelog file handle"
        case .operatorState: "an operator state handle"
        case .channel: "a channel state handle"
        }
    }

    // MARK: - Stream handles

    /// `serializeStreamStateHandle`: codes 0, 1, 2, 3, 6, 15, 16.
    func streamHandle(_ handle: StateHandle?, into out: inout ByteWriter, depth: Int) throws(MetadataWriteError) {
        try Self.checkDepth(depth)
        guard let handle else { return out.u8(Code.null) }
        switch handle {
        case .file(let path, let size):
            out.u8(Code.fileStream)
            out.int64(size)
            try out.utf(path, "the file handle's path")
        case .byteStream(let name, let data):
            out.u8(Code.byteStream)
            try out.utf(name, "the byte stream handle's name")
            try out.lengthPrefixed(data, "the byte stream handle's data")
        case .relativeFile(let relativePath, let size):
            out.u8(Code.relativeStream)
            try out.utf(relativePath, "the relative file handle's path")
            out.int64(size)
        case .keyGroups(let keyGroups) where keyGroups.encoding == .legacy:
            // A KeyGroupsStateHandle nested where a stream goes is always written with code 3.
            out.u8(Code.keyGroups)
            try self.keyGroups(keyGroups, into: &out, depth: depth)
        case .fileSegment(let segment):
            out.u8(Code.segmentFile)
            out.int64(segment.startPosition)
            out.int64(segment.size)
            out.int32(segment.scope == .exclusive ? 0 : 1)
            try out.utf(segment.physicalPath, "the segment's physical file path")
            try out.utf(segment.logicalFileId, "the segment's logical file id")
        case .emptyFileSegment:
            out.u8(Code.emptySegmentFile)
        default:
            throw MetadataWriteError(
                expected: "a stream state handle (file, relative file, byte stream, key groups of type 3, segment)",
                found: Self.kind(handle))
        }
    }

    // MARK: - Keyed handles

    /// `serializeKeyedStateHandle`: codes 0, 3, 5, 7–14.
    func keyedHandle(_ handle: StateHandle?, into out: inout ByteWriter, depth: Int) throws(MetadataWriteError) {
        try Self.checkDepth(depth)
        guard let handle else { return out.u8(Code.null) }
        switch handle {
        case .keyGroups(let keyGroups):
            switch keyGroups.encoding {
            case .legacy: out.u8(Code.keyGroups)
            case .v2: out.u8(Code.keyGroupsV2)
            case .savepoint: out.u8(Code.savepointKeyGroups)
            }
            try self.keyGroups(keyGroups, into: &out, depth: depth)
        case .incrementalRemote(let incremental):
            try self.incremental(incremental, into: &out, depth: depth)
        case .changelog(let changelog):
            try self.changelog(changelog, into: &out, depth: depth)
        case .changelogInMemory(let inMemory):
            try self.inMemoryChangelog(inMemory, into: &out)
        case .changelogFiles(let files):
            try changelogFiles(files, into: &out, depth: depth)
        default:
            throw MetadataWriteError(
                expected: "a keyed state handle (key groups, incremental, changelog)", found: Self.kind(handle))
        }
    }

    /// The start and the count of a range, with the reader's rules: a non-negative count and, for a
    /// non-empty range, a non-negative start whose end stays within Int32.
    private func keyGroupRange(_ range: KeyGroupRange, into out: inout ByteWriter) throws(MetadataWriteError) {
        if range.count > 0 {
            guard range.start >= 0, range.start <= Int(Int32.max) - range.count + 1 else {
                throw MetadataWriteError(
                    expected: "a key-group range with a non-negative start that ends within Int32",
                    found: "start \(range.start), count \(range.count)")
            }
        }
        try out.int32(range.start, "the first key group")
        try out.count(range.count, "the number of key groups")
    }

    private func keyGroups(_ handle: KeyGroupsHandle, into out: inout ByteWriter, depth: Int) throws(MetadataWriteError) {
        try keyGroupRange(handle.keyGroupRange, into: &out)
        guard handle.offsets.count == handle.keyGroupRange.count else {
            throw MetadataWriteError(
                expected: "one offset per key group (\(handle.keyGroupRange.count))", found: "\(handle.offsets.count) offsets")
        }
        for offset in handle.offsets { out.int64(offset) }
        try streamHandle(handle.delegate, into: &out, depth: depth + 1)
        switch (handle.encoding, handle.stateHandleId) {
        case (.v2, let id?): try out.utf(id, "the state handle id")
        case (.v2, nil):
            throw MetadataWriteError(expected: "a state handle id (type 12 has one)", found: "none")
        case (_, nil): break
        case (_, _?):
            throw MetadataWriteError(expected: "no state handle id (types 3 and 7 have none)", found: "one")
        }
    }

    private func incremental(
        _ handle: IncrementalRemoteHandle, into out: inout ByteWriter, depth: Int
    ) throws(MetadataWriteError) {
        // Type 5 predates both the checkpointed size and the id; type 11 has both.
        let isV2: Bool
        switch (handle.checkpointedSize, handle.stateHandleId) {
        case (nil, nil): isV2 = false
        case (_?, _?): isV2 = true
        default:
            throw MetadataWriteError(
                expected: "both a checkpointed size and a state handle id (type 11), or neither (type 5)",
                found: "only one of them")
        }
        out.u8(isV2 ? Code.incrementalKeyGroupsV2 : Code.incrementalKeyGroups)
        out.int64(handle.checkpointId)
        try out.utf(handle.backendIdentifier, "the backend identifier")
        try keyGroupRange(handle.keyGroupRange, into: &out)
        if let size = handle.checkpointedSize { out.int64(size) }
        try streamHandle(handle.metadata, into: &out, depth: depth + 1)
        for (list, what) in [(handle.sharedState, "shared state"), (handle.privateState, "private state")] {
            try out.count(list.count, "the number of \(what) entries")
            for entry in list {
                try out.utf(entry.localPath, "a \(what) entry's local path")
                try streamHandle(entry.handle, into: &out, depth: depth + 1)
            }
        }
        if let id = handle.stateHandleId { try out.utf(id, "the state handle id") }
    }

    private func changelog(
        _ handle: ChangelogBackendHandle, into out: inout ByteWriter, depth: Int
    ) throws(MetadataWriteError) {
        if handle.encoding == .legacy, handle.checkpointId != handle.materializationId {
            throw MetadataWriteError(
                expected: "a checkpoint id equal to the materialization id (type 8 stores only the latter)",
                found: "\(handle.checkpointId) and \(handle.materializationId)")
        }
        out.u8(handle.encoding == .v2 ? Code.changelogV2 : Code.changelog)
        try keyGroupRange(handle.keyGroupRange, into: &out)
        out.int64(handle.checkpointedSize)
        try out.count(handle.materialized.count, "the number of materialized handles")
        for materialized in handle.materialized { try keyedHandle(materialized, into: &out, depth: depth + 1) }
        try out.count(handle.nonMaterialized.count, "the number of non-materialized handles")
        for tail in handle.nonMaterialized {
            switch tail {
            case .changelogInMemory, .changelogFiles: break
            default:
                throw MetadataWriteError(
                    expected: "a changelog handle (type 9, 10 or 13) in the non-materialized part", found: Self.kind(tail))
            }
            try keyedHandle(tail, into: &out, depth: depth + 1)
        }
        out.int64(handle.materializationId)
        if handle.encoding == .v2 { out.int64(handle.checkpointId) }
        try out.utf(handle.stateHandleId, "the state handle id")
    }

    private func inMemoryChangelog(_ handle: InMemoryChangelogHandle, into out: inout ByteWriter) throws(MetadataWriteError) {
        out.u8(Code.changelogByteIncrement)
        try keyGroupRange(handle.keyGroupRange, into: &out)
        out.int64(handle.fromSequenceNumber)
        out.int64(handle.toSequenceNumber)
        try out.count(handle.changes.count, "the number of changes")
        for change in handle.changes {
            out.int32(change.keyGroup)
            try out.lengthPrefixed(change.data, "a change")
        }
        try out.utf(handle.stateHandleId, "the state handle id")
    }

    private func changelogFiles(
        _ handle: ChangelogFilesHandle, into out: inout ByteWriter, depth: Int
    ) throws(MetadataWriteError) {
        if handle.encoding == .legacy, handle.storageIdentifier != "filesystem" {
            throw MetadataWriteError(
                expected: "the storage identifier \"filesystem\" (type 10 stores none)",
                found: "\"\(handle.storageIdentifier)\"")
        }
        out.u8(handle.encoding == .v2 ? Code.changelogFileIncrementV2 : Code.changelogFileIncrement)
        try keyGroupRange(handle.keyGroupRange, into: &out)
        try out.count(handle.parts.count, "the number of changelog file parts")
        for part in handle.parts {
            out.int64(part.offset)
            try streamHandle(part.handle, into: &out, depth: depth + 1)
        }
        out.int64(handle.stateSize)
        out.int64(handle.checkpointedSize)
        try out.utf(handle.stateHandleId, "the state handle id")
        if handle.encoding == .v2 { try out.utf(handle.storageIdentifier, "the storage identifier") }
    }

    // MARK: - Operator handles

    /// `serializeOperatorStateHandle`: codes 4 and 17 (the caller writes the has-state flag).
    func operatorHandle(_ handle: StateHandle, into out: inout ByteWriter, depth: Int) throws(MetadataWriteError) {
        try Self.checkDepth(depth)
        guard case .operatorState(let state) = handle else {
            throw MetadataWriteError(expected: "an operator state handle", found: Self.kind(handle))
        }
        out.u8(state.fileMerging == nil ? Code.partitionableOperator : Code.segmentPartitionableOperator)
        try out.count(state.states.count, "the number of named operator states")
        for named in state.states {
            try out.utf(named.name, "an operator state's name")
            switch named.mode {
            case .splitDistribute: out.u8(0)
            case .union: out.u8(1)
            case .broadcast: out.u8(2)
            }
            try out.count(named.offsets.count, "the number of partition offsets")
            for offset in named.offsets { out.int64(offset) }
        }
        if let merging = state.fileMerging {
            try out.utf(merging.taskOwnedDirectory, "the task-owned directory")
            try out.utf(merging.sharedDirectory, "the shared directory")
            out.bool(merging.isEmpty)
            switch state.delegate {
            case .fileSegment?, .emptyFileSegment?: break
            default:
                throw MetadataWriteError(
                    expected: "a file segment handle (15 or 16) as a file-merging operator's delegate",
                    found: state.delegate.map(Self.kind) ?? "the null handle")
            }
        }
        try streamHandle(state.delegate, into: &out, depth: depth + 1)
    }

    // MARK: - Channel state

    /// Versions 3–5: the untyped single-channel layout; version 6: a type byte first (1/2 single, 3/4 merged).
    func channelHandle(
        _ handle: StateHandle, direction: ChannelStateHandle.Direction, into out: inout ByteWriter, depth: Int
    ) throws(MetadataWriteError) {
        try Self.checkDepth(depth)
        let what = direction == .input ? "an input channel state handle" : "a result subpartition state handle"
        guard case .channel(let channel) = handle, channel.direction == direction else {
            throw MetadataWriteError(expected: what, found: Self.kind(handle))
        }
        switch channel.layout {
        case .single(let first, let second, let offsets):
            if version >= 6 { out.u8(direction == .input ? 1 : 2) }
            try out.int32(channel.subtaskIndex, "the channel handle's subtask index")
            try out.int32(first, direction == .input ? "the input gate index" : "the partition index")
            try out.int32(second, direction == .input ? "the input channel index" : "the subpartition index")
            try out.count(offsets.count, "the number of channel offsets")
            for offset in offsets { out.int64(offset) }
            out.int64(channel.stateSize)
            try streamHandle(channel.delegate, into: &out, depth: depth + 1)
        case .merged(let serializedOffsets):
            guard version >= 6 else {
                throw MetadataWriteError(
                    expected: "a single-channel handle (merged handles need version 6; the writer does not upgrade)",
                    found: "a merged channel handle in version \(version)")
            }
            out.u8(direction == .input ? 3 : 4)
            try out.int32(channel.subtaskIndex, "the channel handle's subtask index")
            out.int64(channel.stateSize)
            try streamHandle(channel.delegate, into: &out, depth: depth + 1)
            try out.lengthPrefixed(serializedOffsets, "the serialized channel offsets")
        }
    }
}
