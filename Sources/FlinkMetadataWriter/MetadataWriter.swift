import FlinkMetadata

/// Writes a `CheckpointMetadata` value as a Flink `_metadata` file, in the format version the value says.
///
/// This is its own module, beside the reader rather than inside it, on purpose: it sees only the reader's
/// public model. Everything it needs to write a file back byte for byte must therefore be in that model
/// (inline payloads, master state, the properties trailer, which of two legacy layouts a handle had), so a
/// value handed to any caller is the whole snapshot, not a summary. A writer inside the reader's module could
/// lean on internal state and hide a model that silently drops information.
///
/// Layout: `Checkpoints.storeCheckpointMetadata` with `MetadataV3Serializer` (version 3),
/// `MetadataV4Serializer` (4: V3 + properties trailer), `MetadataV5Serializer` (5: + operator name and uid)
/// and the V6 serializer (6: + typed channel-state handles). The writer never changes the version: a value
/// read from a version-4 file is written as version 4, and a value that needs a newer version than it says
/// (a merged channel handle in version 5, an operator name in version 4) is refused, not upgraded.
public enum MetadataWriter {
    /// `Checkpoints.HEADER_MAGIC_NUMBER`.
    public static let magic: UInt32 = MetadataReader.magic
    /// Versions this writer writes: the ones the reader reads.
    public static let supportedVersions: ClosedRange<Int> = MetadataReader.supportedVersions

    /// The bytes of `metadata` as a `_metadata` file.
    ///
    /// The result is read back before it is returned, and must decode to a value equal to `metadata`:
    /// a value that the format cannot carry faithfully (e.g. an operator name of "" where `nil` is the only
    /// way Flink's "absent" reads back) is an error here, never a file that means something else.
    public static func encode(_ metadata: CheckpointMetadata) throws(MetadataWriteError) -> [UInt8] {
        let bytes = try encodeUnchecked(metadata)
        let readBack: CheckpointMetadata
        do {
            readBack = try MetadataReader.read(bytes)
        } catch {
            throw MetadataWriteError(expected: "a value whose bytes the reader accepts", found: "\(error)")
        }
        guard readBack == metadata else {
            throw MetadataWriteError(
                expected: "a value that reads back unchanged",
                found: "a value the format cannot carry as is (\(firstDifference(metadata, readBack)))")
        }
        return bytes
    }

    /// The bytes without the read-back check; for the check itself and for tests of it.
    static func encodeUnchecked(_ metadata: CheckpointMetadata) throws(MetadataWriteError) -> [UInt8] {
        guard supportedVersions.contains(metadata.version) else {
            throw MetadataWriteError(
                expected: "a metadata version the reader reads (3 to 6)", found: "version \(metadata.version)")
        }
        var out = ByteWriter()
        out.int32(Int32(bitPattern: magic))
        out.int32(Int32(metadata.version))
        var body = BodyEncoder(version: metadata.version)
        try body.encode(metadata, into: &out)
        return out.bytes
    }

    /// A short description of where two values first differ, for the read-back error.
    private static func firstDifference(_ a: CheckpointMetadata, _ b: CheckpointMetadata) -> String {
        if a.checkpointId != b.checkpointId { return "checkpoint id" }
        if a.masterStates != b.masterStates { return "master states" }
        if a.operators.count != b.operators.count { return "operator count" }
        for (index, (x, y)) in zip(a.operators, b.operators).enumerated() where x != y {
            if x.name != y.name || x.uid != y.uid { return "operator \(index): name or uid" }
            for (s, (p, q)) in zip(x.subtasks, y.subtasks).enumerated() where p != q {
                return "operator \(index), subtask entry \(s)"
            }
            return "operator \(index)"
        }
        if a.properties != b.properties { return "properties trailer" }
        return "trailing bytes"
    }
}

/// The body after the header: mirror of the reader's `BodyDecoder`.
struct BodyEncoder {
    /// `MetadataV2V3SerializerBase.MASTER_STATE_MAGIC_NUMBER`.
    static let masterStateMagic: UInt32 = 0xC96B_1696

    let version: Int
    let handles: HandleEncoder

    init(version: Int) {
        self.version = version
        self.handles = HandleEncoder(version: version)
    }

    mutating func encode(_ metadata: CheckpointMetadata, into out: inout ByteWriter) throws(MetadataWriteError) {
        guard metadata.checkpointId >= 0 else {
            throw MetadataWriteError(expected: "a non-negative checkpoint id", found: "\(metadata.checkpointId)")
        }
        out.int64(metadata.checkpointId)

        try out.count(metadata.masterStates.count, "the number of master states")
        for (index, master) in metadata.masterStates.enumerated() {
            do throws(MetadataWriteError) { try masterState(master, into: &out) } catch {
                throw error.within("master state \(index)")
            }
        }

        try out.count(metadata.operators.count, "the number of operator states")
        for (index, operatorState) in metadata.operators.enumerated() {
            do throws(MetadataWriteError) { try self.operatorState(operatorState, into: &out) } catch {
                throw error.within("operator \(index)")
            }
        }

        switch (version >= 4, metadata.properties) {
        case (true, let properties?):
            out.raw(properties.rawBytes)
        case (true, nil):
            throw MetadataWriteError(
                expected: "a checkpoint properties trailer (every version \(version) file has one)", found: "none")
        case (false, nil):
            break
        case (false, _?):
            throw MetadataWriteError(
                expected: "no checkpoint properties (version 3 has no trailer; the writer does not upgrade)",
                found: "a properties trailer")
        }
        out.raw(metadata.trailingBytes)
    }

    /// `serializeMasterState`: magic, blob length, then version, name and payload inside the blob.
    private func masterState(_ master: MasterState, into out: inout ByteWriter) throws(MetadataWriteError) {
        var blob = ByteWriter()
        blob.int32(master.version)
        try blob.utf(master.name, "the master state name")
        try blob.lengthPrefixed(master.payload, "the master state payload")
        out.int32(Int32(bitPattern: Self.masterStateMagic))
        try out.lengthPrefixed(blob.bytes, "the master state")
    }

    private func operatorState(_ state: OperatorState, into out: inout ByteWriter) throws(MetadataWriteError) {
        if version >= 5 {
            try out.utf(state.name ?? "", "the operator name")
            try out.utf(state.uid ?? "", "the operator uid")
        } else if state.name != nil || state.uid != nil {
            throw MetadataWriteError(
                expected: "no operator name or uid (version \(version) has neither; the writer does not upgrade)",
                found: "name \(state.name.map { "\"\($0)\"" } ?? "none"), uid \(state.uid.map { "\"\($0)\"" } ?? "none")")
        }
        out.raw(try Self.operatorIDBytes(state.operatorID))
        try out.int32(state.parallelism, "the parallelism")
        try out.int32(state.maxParallelism, "the max parallelism")

        switch state.coordinatorState {
        case nil, .byteStream?: break
        default:
            throw MetadataWriteError(
                expected: "an inline (byte stream) or null coordinator state", found: "a file-backed handle")
        }
        try handles.streamHandle(state.coordinatorState, into: &out, depth: 0)

        if state.fullyFinished {
            guard state.coordinatorState == nil, state.subtasks.isEmpty else {
                throw MetadataWriteError(
                    expected: "no coordinator state and no subtasks for a fully finished operator",
                    found: "\(state.coordinatorState == nil ? "no" : "a") coordinator state and \(state.subtasks.count) subtasks")
            }
            out.int32(-1)
            return
        }
        try out.count(state.subtasks.count, "the number of subtask states")
        for subtask in state.subtasks {
            do throws(MetadataWriteError) { try subtaskState(subtask, into: &out) } catch {
                throw error.within("subtask \(subtask.index)")
            }
        }
    }

    /// 32 hex digits back into the 16 bytes Flink wrote (lowerPart then upperPart, big-endian).
    static func operatorIDBytes(_ hex: String) throws(MetadataWriteError) -> [UInt8] {
        let digits = Array(hex.utf8)
        func nibble(_ c: UInt8) -> UInt8? {
            switch c {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): c - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): c - UInt8(ascii: "a") + 10
            default: nil
            }
        }
        var out: [UInt8] = []
        if digits.count == 32 {
            for index in stride(from: 0, to: 32, by: 2) {
                guard let high = nibble(digits[index]), let low = nibble(digits[index + 1]) else { break }
                out.append(high << 4 | low)
            }
        }
        guard out.count == 16 else {
            throw MetadataWriteError(expected: "an operator id of 32 lowercase hex digits", found: "\"\(hex)\"")
        }
        return out
    }

    private func subtaskState(_ subtask: SubtaskState, into out: inout ByteWriter) throws(MetadataWriteError) {
        guard subtask.index >= 0 else {
            throw MetadataWriteError(expected: "a non-negative subtask index", found: "\(subtask.index)")
        }
        if subtask.finished {
            guard subtask.handles.isEmpty else {
                throw MetadataWriteError(
                    expected: "no state for a finished subtask (Flink writes only its index)",
                    found: "\(subtask.handles.count) handles")
            }
            try out.int32(-subtask.index - 1, "a finished subtask's index")
            return
        }
        try out.int32(subtask.index, "a subtask index")
        for handle in [subtask.managedOperatorState, subtask.rawOperatorState] {
            // serializeSingleton: 1 and the handle, or 0 and nothing.
            if let handle {
                out.int32(1)
                try handles.operatorHandle(handle, into: &out, depth: 0)
            } else {
                out.int32(0)
            }
        }
        try handles.keyedHandle(subtask.managedKeyedState, into: &out, depth: 0)
        try handles.keyedHandle(subtask.rawKeyedState, into: &out, depth: 0)
        for (list, direction) in [(subtask.inputChannelState, ChannelStateHandle.Direction.input),
                                  (subtask.resultSubpartitionState, .output)] {
            try out.count(list.count, "the number of channel state handles")
            for handle in list {
                try handles.channelHandle(handle, direction: direction, into: &out, depth: 0)
            }
        }
    }
}
