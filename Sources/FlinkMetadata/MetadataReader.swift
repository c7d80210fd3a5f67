import Foundation

/// Entry point: decodes a whole `_metadata` file (header, body, properties trailer).
///
/// The layout follows `Checkpoints.loadCheckpointMetadata` and the `MetadataV3`–`V6` serializers.
/// Only what Flink itself would accept is accepted; anything else is a `MetadataError` naming the
/// byte offset, never a trap, an unbounded loop or an allocation larger than the input.
public enum MetadataReader {
    /// `Checkpoints.HEADER_MAGIC_NUMBER`.
    public static let magic: UInt32 = 0x4960_672D
    /// Versions this reader decodes. 1 and 2 predate Flink 1.11's layout; 7 was unreleased at the time
    /// of writing (its subtask trailer would be misread as the next field).
    public static let supportedVersions: ClosedRange<Int> = 3...6

    public static func read(_ data: Data) throws(MetadataError) -> CheckpointMetadata {
        try read([UInt8](data))
    }

    public static func read(_ bytes: [UInt8]) throws(MetadataError) -> CheckpointMetadata {
        var reader = ByteReader(bytes)
        let version = try header(&reader)
        var body = BodyDecoder(version: version)
        return try body.decode(&reader)
    }

    /// Reads only the magic and the version, e.g. to list snapshots without decoding them.
    public static func version(of bytes: [UInt8]) throws(MetadataError) -> Int {
        var reader = ByteReader(bytes)
        return try header(&reader)
    }

    private static func header(_ reader: inout ByteReader) throws(MetadataError) -> Int {
        let magicValue = UInt32(bitPattern: try reader.int32("the magic number 0x4960672d"))
        guard magicValue == magic else {
            throw reader.error(
                at: 0, "the magic number 0x4960672d of a Flink _metadata file",
                found: "0x" + String(magicValue, radix: 16))
        }
        let versionOffset = reader.offset
        let version = Int(try reader.int32("the metadata format version"))
        guard supportedVersions.contains(version) else {
            let why: String
            switch version {
            case 1, 2: why = "version \(version) (written by Flink 1.2 to 1.10, no longer supported)"
            case 7...: why = "version \(version) (newer than this reader)"
            default: why = "version \(version) (not a Flink metadata version)"
            }
            throw reader.error(at: versionOffset, "a supported metadata version (3 to 6)", found: why)
        }
        return version
    }
}

/// Decodes everything after the header for one format version.
struct BodyDecoder {
    /// `MetadataV2V3SerializerBase.MASTER_STATE_MAGIC_NUMBER`.
    static let masterStateMagic: UInt32 = 0xC96B_1696

    let version: Int
    let handles: HandleDecoder

    init(version: Int) {
        self.version = version
        self.handles = HandleDecoder(version: version)
    }

    mutating func decode(_ reader: inout ByteReader) throws(MetadataError) -> CheckpointMetadata {
        let idOffset = reader.offset
        let checkpointId = try reader.int64("the checkpoint id")
        guard checkpointId >= 0 else {
            throw reader.error(at: idOffset, "a non-negative checkpoint id", found: "\(checkpointId)")
        }

        // A master state is at least magic, length and a 4+2+4-byte body.
        let masterCount = try reader.count("the number of master states", minimumElementSize: 18)
        var masters: [MasterState] = []
        for index in 0..<masterCount {
            do throws(MetadataError) { masters.append(try masterState(&reader)) } catch {
                throw error.within("master state \(index)")
            }
        }

        // An operator is at least id, parallelisms, a null coordinator and a subtask count (V5+: names too).
        let operatorMinimum = 16 + 4 + 4 + 1 + 4 + (version >= 5 ? 4 : 0)
        let operatorCount = try reader.count("the number of operator states", minimumElementSize: operatorMinimum)
        var operators: [OperatorState] = []
        for index in 0..<operatorCount {
            do throws(MetadataError) { operators.append(try operatorState(&reader)) } catch {
                throw error.within("operator \(index)")
            }
        }

        var properties: PropertiesTrailer?
        if version >= 4 {
            do throws(MetadataError) { properties = try PropertiesTrailer.decode(&reader) } catch {
                throw error.within("checkpoint properties")
            }
        }
        return CheckpointMetadata(
            version: version, checkpointId: checkpointId, masterStates: masters, operators: operators,
            properties: properties, trailingBytes: Array(try reader.bytes(reader.remaining, "the trailing bytes")))
    }

    /// Master states are length-prefixed blobs whose inner fields must fill the blob exactly.
    private func masterState(_ reader: inout ByteReader) throws(MetadataError) -> MasterState {
        let magicOffset = reader.offset
        let magicValue = UInt32(bitPattern: try reader.int32("the master state magic number 0xc96b1696"))
        guard magicValue == Self.masterStateMagic else {
            throw reader.error(
                at: magicOffset, "the master state magic number 0xc96b1696", found: "0x" + String(magicValue, radix: 16))
        }
        let lengthOffset = reader.offset
        let length = try reader.count("the master state length", minimumElementSize: 1)
        guard length > 0 else {
            throw reader.error(at: lengthOffset, "a positive master state length", found: "0")
        }
        let blobEnd = reader.offset + length
        let version = try reader.int32("the master state version")
        let name = try reader.utf("the master state name")
        let payloadOffset = reader.offset
        let payload = try reader.count("the master state payload length", minimumElementSize: 1)
        guard reader.offset + payload <= blobEnd else {
            throw reader.error(
                at: payloadOffset, "a master state payload that ends inside its \(length)-byte blob",
                found: "\(payload) bytes")
        }
        let bytes = Array(try reader.bytes(payload, "the master state payload"))
        guard reader.offset == blobEnd else {
            throw reader.error(
                "the master state to end here (its blob is \(length) bytes)",
                found: reader.offset < blobEnd ? "\(blobEnd - reader.offset) trailing bytes" : "an overrun")
        }
        return MasterState(name: name, version: version, payload: bytes)
    }

    private func operatorState(_ reader: inout ByteReader) throws(MetadataError) -> OperatorState {
        var name: String?
        var uid: String?
        if version >= 5 {
            let rawName = try reader.utf("the operator name")
            let rawUid = try reader.utf("the operator uid")
            name = rawName.isEmpty ? nil : rawName
            uid = rawUid.isEmpty ? nil : rawUid
        }
        // lowerPart then upperPart, both big-endian: exactly the order AbstractID.toHexString prints.
        let idBytes = try reader.bytes(16, "the 16-byte operator id")
        let operatorID = idBytes.map { byte -> String in
            let digits = String(byte, radix: 16)
            return digits.count == 1 ? "0" + digits : digits
        }.joined()
        let label = name.map { "operator \(operatorID) \"\($0)\"" } ?? "operator \(operatorID)"

        do throws(MetadataError) {
            let parallelism = Int(try reader.int32("the parallelism"))
            let maxParallelism = Int(try reader.int32("the max parallelism"))

            let coordinatorOffset = reader.offset
            let coordinator = try handles.streamHandle(&reader, depth: 0)
            switch coordinator {
            case nil, .byteStream?: break
            default:
                // deserializeAndCheckByteStreamStateHandle
                throw reader.error(
                    at: coordinatorOffset, "an inline (byte stream) or null coordinator state",
                    found: "a file-backed handle")
            }

            let countOffset = reader.offset
            let subtaskCount = Int(try reader.int32("the number of subtask states"))
            if subtaskCount < 0 {
                guard coordinator == nil else {
                    throw reader.error(
                        at: countOffset, "no coordinator state for a fully finished operator",
                        found: "a coordinator state")
                }
                return OperatorState(
                    name: name, uid: uid, operatorID: operatorID, parallelism: parallelism,
                    maxParallelism: maxParallelism, coordinatorState: nil, subtasks: [], fullyFinished: true)
            }
            try reader.ensureFits(
                subtaskCount, elementSize: 4, "the number of subtask states", countOffset: countOffset)
            var subtasks: [SubtaskState] = []
            for _ in 0..<subtaskCount {
                let stored = Int(try reader.int32("a subtask index"))
                if stored < 0 {
                    subtasks.append(.finished(index: -stored - 1))
                    continue
                }
                do throws(MetadataError) { subtasks.append(try subtaskState(&reader, index: stored)) } catch {
                    throw error.within("subtask \(stored)")
                }
            }
            return OperatorState(
                name: name, uid: uid, operatorID: operatorID, parallelism: parallelism,
                maxParallelism: maxParallelism, coordinatorState: coordinator, subtasks: subtasks,
                fullyFinished: false)
        } catch {
            throw error.within(label)
        }
    }

    private func subtaskState(_ reader: inout ByteReader, index: Int) throws(MetadataError) -> SubtaskState {
        let managedOperator =
            try reader.int32("the has-managed-operator-state flag") != 0
            ? try handles.operatorHandle(&reader, depth: 0) : nil
        let rawOperator =
            try reader.int32("the has-raw-operator-state flag") != 0
            ? try handles.operatorHandle(&reader, depth: 0) : nil
        let managedKeyed = try handles.keyedHandle(&reader, depth: 0)
        let rawKeyed = try handles.keyedHandle(&reader, depth: 0)
        let input = try channelHandles(&reader, direction: .input)
        let output = try channelHandles(&reader, direction: .output)
        return SubtaskState(
            index: index, finished: false, managedOperatorState: managedOperator, rawOperatorState: rawOperator,
            managedKeyedState: managedKeyed, rawKeyedState: rawKeyed, inputChannelState: input,
            resultSubpartitionState: output)
    }

    private func channelHandles(
        _ reader: inout ByteReader, direction: ChannelStateHandle.Direction
    ) throws(MetadataError) -> [StateHandle] {
        let what = direction == .input ? "input channel state handles" : "result subpartition state handles"
        // The smallest handle is V6's merged layout with a null delegate: 1 + 4 + 8 + 1 + 4 bytes.
        let count = try reader.count("the number of \(what)", minimumElementSize: 18)
        var result: [StateHandle] = []
        for _ in 0..<count {
            result.append(try handles.channelHandle(&reader, direction: direction, depth: 0))
        }
        return result
    }
}
