/// The version 4+ trailer: `CheckpointProperties`, Java-serialized.
///
/// It is the only place in `_metadata` that says whether a snapshot is a checkpoint or a savepoint,
/// which savepoint format it has, and which retention policy Flink applied — facts a snapshot manager
/// cannot get from the directory layout alone.
public struct PropertiesTrailer: Sendable, Equatable {
    /// The trailer's Java serialization stream, verbatim, for callers that need more than `decoded`.
    public let rawBytes: [UInt8]
    /// The properties, when the stream holds a `CheckpointProperties` object of a known shape.
    /// `nil` when it is well-formed Java serialization of something else.
    public let decoded: CheckpointProperties?
    /// The class of the top-level object, e.g. `org.apache.flink.runtime.checkpoint.CheckpointProperties`.
    public let className: String?

    /// A structurally broken stream is an error (Flink could not load the file either); a
    /// well-formed stream of an unexpected shape is kept raw, because that is a newer Flink
    /// rather than a corrupt file.
    static func decode(_ reader: inout ByteReader) throws(MetadataError) -> PropertiesTrailer {
        let start = reader.offset
        var probe = reader
        let value = try JavaObjectStream.readObject(&probe)
        let raw = Array(try reader.bytes(probe.offset - start, "the checkpoint properties"))
        var className: String?
        if case .object(let name, _) = value { className = name }
        return PropertiesTrailer(rawBytes: raw, decoded: CheckpointProperties(value), className: className)
    }
}

/// `org.apache.flink.runtime.checkpoint.CheckpointProperties`.
public struct CheckpointProperties: Sendable, Equatable {
    public let forced: Bool
    public let discardSubsumed: Bool
    public let discardFinished: Bool
    public let discardCancelled: Bool
    public let discardFailed: Bool
    public let discardSuspended: Bool
    /// Restored in NO_CLAIM mode: Flink does not own the snapshot's files.
    public let unclaimed: Bool
    public let snapshotType: SnapshotType

    public init(
        forced: Bool, discardSubsumed: Bool, discardFinished: Bool, discardCancelled: Bool, discardFailed: Bool,
        discardSuspended: Bool, unclaimed: Bool, snapshotType: SnapshotType
    ) {
        self.forced = forced
        self.discardSubsumed = discardSubsumed
        self.discardFinished = discardFinished
        self.discardCancelled = discardCancelled
        self.discardFailed = discardFailed
        self.discardSuspended = discardSuspended
        self.unclaimed = unclaimed
        self.snapshotType = snapshotType
    }

    public var isSavepoint: Bool {
        if case .savepoint = snapshotType { return true }
        return false
    }

    static let className = "org.apache.flink.runtime.checkpoint.CheckpointProperties"

    /// Interprets a decoded Java object. Missing boolean fields read as `false`, which is what Java
    /// deserialization itself does for fields an older writer did not have.
    init?(_ value: JavaObjectStream.Value) {
        guard case .object(let name, let fields) = value, name == Self.className else { return nil }
        func flag(_ key: String) -> Bool? {
            switch fields[key] {
            case nil: return false
            case .bool(let value)?: return value
            default: return nil
            }
        }
        guard let forced = flag("forced"), let discardSubsumed = flag("discardSubsumed"),
            let discardFinished = flag("discardFinished"), let discardCancelled = flag("discardCancelled"),
            let discardFailed = flag("discardFailed"), let discardSuspended = flag("discardSuspended"),
            let unclaimed = flag("unclaimed"), let type = fields["checkpointType"]
        else { return nil }
        self.init(
            forced: forced, discardSubsumed: discardSubsumed, discardFinished: discardFinished,
            discardCancelled: discardCancelled, discardFailed: discardFailed, discardSuspended: discardSuspended,
            unclaimed: unclaimed, snapshotType: SnapshotType(type))
    }
}

/// `SnapshotType`: what kind of snapshot Flink took.
public enum SnapshotType: Sendable, Equatable {
    /// `CheckpointType`: `name` is "Checkpoint" (incremental where the backend supports it) or
    /// "Full Checkpoint".
    case checkpoint(name: String, sharingFilesStrategy: SharingFilesStrategy)
    /// `SavepointType`: `name` is "Savepoint", "Terminate Savepoint" or "Suspend Savepoint".
    case savepoint(name: String, format: SavepointFormat, postCheckpointAction: String)
    /// A type this reader does not know (described by its Java class name).
    case unknown(String)

    init(_ value: JavaObjectStream.Value) {
        switch value {
        case .object("org.apache.flink.runtime.checkpoint.CheckpointType", let fields):
            guard case .string(let name)? = fields["name"],
                case .enumConstant(_, let strategy)? = fields["sharingFilesStrategy"]
            else { self = .unknown("org.apache.flink.runtime.checkpoint.CheckpointType"); return }
            self = .checkpoint(name: name, sharingFilesStrategy: SharingFilesStrategy(strategy))
        case .object("org.apache.flink.runtime.checkpoint.SavepointType", let fields):
            guard case .string(let name)? = fields["name"],
                case .enumConstant(_, let format)? = fields["formatType"],
                case .enumConstant(_, let action)? = fields["postCheckpointAction"]
            else { self = .unknown("org.apache.flink.runtime.checkpoint.SavepointType"); return }
            self = .savepoint(name: name, format: SavepointFormat(format), postCheckpointAction: action)
        case .object(let className, _), .enumConstant(let className, _):
            self = .unknown(className)
        default:
            self = .unknown("(not an object)")
        }
    }
}

/// `SnapshotType.SharingFilesStrategy`.
public enum SharingFilesStrategy: Sendable, Equatable {
    /// Incremental checkpoints: reuse earlier files and let later ones reuse these.
    case forwardBackward
    /// Full checkpoints: reuse nothing, but later checkpoints may reuse these files.
    case forward
    /// Savepoints: share nothing in either direction.
    case noSharing
    case other(String)

    init(_ name: String) {
        switch name {
        case "FORWARD_BACKWARD": self = .forwardBackward
        case "FORWARD": self = .forward
        case "NO_SHARING": self = .noSharing
        default: self = .other(name)
        }
    }
}

/// `SavepointFormatType`.
public enum SavepointFormat: Sendable, Equatable {
    /// Backend-independent; relocatable and usable with another state backend.
    case canonical
    /// The backend's own files (e.g. RocksDB SSTs); faster, tied to that backend.
    case native
    case other(String)

    init(_ name: String) {
        switch name {
        case "CANONICAL": self = .canonical
        case "NATIVE": self = .native
        default: self = .other(name)
        }
    }
}
