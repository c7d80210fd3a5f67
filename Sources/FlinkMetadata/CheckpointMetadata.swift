/// A decoded `_metadata` file: one checkpoint or savepoint as Flink's JobManager recorded it.
public struct CheckpointMetadata: Sendable, Equatable {
    /// Format version from the header (3–6). 4 added the properties trailer, 5 operator names and
    /// uids, 6 typed channel-state handles.
    public var version: Int
    public var checkpointId: Int64
    /// Coordinator-side state blobs (inline; they reference no files).
    public var masterStates: [MasterState]
    public var operators: [OperatorState]
    /// The Java-serialized `CheckpointProperties` trailer; `nil` for version 3, which has none.
    public var properties: PropertiesTrailer?
    /// Bytes after the last structure. Flink ignores them, so the reader does too, but keeps them so that
    /// writing the value back gives the same file.
    public var trailingBytes: [UInt8]

    /// How many bytes follow the last structure.
    public var trailingByteCount: Int { trailingBytes.count }

    public init(
        version: Int, checkpointId: Int64, masterStates: [MasterState], operators: [OperatorState],
        properties: PropertiesTrailer?, trailingBytes: [UInt8] = []
    ) {
        self.version = version
        self.checkpointId = checkpointId
        self.masterStates = masterStates
        self.operators = operators
        self.properties = properties
        self.trailingBytes = trailingBytes
    }
}

/// One entry of the master-state section (e.g. from a `MasterTriggerRestoreHook`).
public struct MasterState: Sendable, Equatable {
    public var name: String
    public var version: Int32
    /// The hook's serialized state, inline (it names no files).
    public var payload: [UInt8]

    /// Size of the inline payload.
    public var size: Int { payload.count }

    public init(name: String, version: Int32, payload: [UInt8]) {
        self.name = name
        self.version = version
        self.payload = payload
    }
}

/// The state of one operator across all of its subtasks.
public struct OperatorState: Sendable, Equatable {
    /// Operator name (V5+); `nil` when absent, including the empty string Flink writes for "none".
    public var name: String?
    /// User-assigned uid (V5+); `nil` when absent.
    public var uid: String?
    /// 32 lowercase hex digits, exactly as `OperatorID.toHexString()` prints it.
    public var operatorID: String
    public var parallelism: Int
    public var maxParallelism: Int
    /// Operator coordinator state; Flink only accepts an inline byte stream (or none) here.
    public var coordinatorState: StateHandle?
    /// Subtasks in file order. Empty when `fullyFinished`.
    public var subtasks: [SubtaskState]
    /// Every subtask had finished when the snapshot was taken (Flink writes subtask count -1).
    public var fullyFinished: Bool
}

/// One subtask's state. Finished subtasks carry an index and no handles.
public struct SubtaskState: Sendable, Equatable {
    public var index: Int
    /// The subtask had finished (Flink wrote `-(index + 1)` and no state).
    public var finished: Bool
    public var managedOperatorState: StateHandle?
    public var rawOperatorState: StateHandle?
    public var managedKeyedState: StateHandle?
    public var rawKeyedState: StateHandle?
    public var inputChannelState: [StateHandle]
    public var resultSubpartitionState: [StateHandle]

    /// All top-level handles of this subtask, in file order.
    public var handles: [StateHandle] {
        [managedOperatorState, rawOperatorState, managedKeyedState, rawKeyedState].compactMap { $0 }
            + inputChannelState + resultSubpartitionState
    }

    static func finished(index: Int) -> SubtaskState {
        SubtaskState(
            index: index, finished: true, managedOperatorState: nil, rawOperatorState: nil,
            managedKeyedState: nil, rawKeyedState: nil, inputChannelState: [], resultSubpartitionState: [])
    }
}
