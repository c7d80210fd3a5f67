/// A decoded `_metadata` file: one checkpoint or savepoint as Flink's JobManager recorded it.
public struct CheckpointMetadata: Sendable, Equatable {
    /// Format version from the header (3–6). 4 added the properties trailer, 5 operator names and
    /// uids, 6 typed channel-state handles.
    public let version: Int
    public let checkpointId: Int64
    /// Coordinator-side state blobs (inline; they reference no files).
    public let masterStates: [MasterState]
    public let operators: [OperatorState]
    /// The Java-serialized `CheckpointProperties` trailer; `nil` for version 3, which has none.
    public let properties: PropertiesTrailer?
    /// Bytes after the last structure. Flink ignores them, so the reader does too, but says how many.
    public let trailingByteCount: Int

    public init(
        version: Int, checkpointId: Int64, masterStates: [MasterState], operators: [OperatorState],
        properties: PropertiesTrailer?, trailingByteCount: Int
    ) {
        self.version = version
        self.checkpointId = checkpointId
        self.masterStates = masterStates
        self.operators = operators
        self.properties = properties
        self.trailingByteCount = trailingByteCount
    }
}

/// One entry of the master-state section (e.g. from a `MasterTriggerRestoreHook`).
public struct MasterState: Sendable, Equatable {
    public let name: String
    public let version: Int32
    /// Size of the inline payload, which is not kept.
    public let size: Int
}

/// The state of one operator across all of its subtasks.
public struct OperatorState: Sendable, Equatable {
    /// Operator name (V5+); `nil` when absent, including the empty string Flink writes for "none".
    public let name: String?
    /// User-assigned uid (V5+); `nil` when absent.
    public let uid: String?
    /// 32 lowercase hex digits, exactly as `OperatorID.toHexString()` prints it.
    public let operatorID: String
    public let parallelism: Int
    public let maxParallelism: Int
    /// Operator coordinator state; Flink only accepts an inline byte stream (or none) here.
    public let coordinatorState: StateHandle?
    /// Subtasks in file order. Empty when `fullyFinished`.
    public let subtasks: [SubtaskState]
    /// Every subtask had finished when the snapshot was taken (Flink writes subtask count -1).
    public let fullyFinished: Bool
}

/// One subtask's state. Finished subtasks carry an index and no handles.
public struct SubtaskState: Sendable, Equatable {
    public let index: Int
    /// The subtask had finished (Flink wrote `-(index + 1)` and no state).
    public let finished: Bool
    public let managedOperatorState: StateHandle?
    public let rawOperatorState: StateHandle?
    public let managedKeyedState: StateHandle?
    public let rawKeyedState: StateHandle?
    public let inputChannelState: [StateHandle]
    public let resultSubpartitionState: [StateHandle]

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
