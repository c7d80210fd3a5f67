import Foundation

/// What produces snapshots of a job's state: the embedded `local` engine or a Flink job. The mount and the command
/// line trigger snapshots only through this, so they behave the same whatever the engine.
public protocol SnapshotEngine: Sendable {
    var name: String { get }
    /// The format `default` stands for: the job's configured one.
    var defaultFormat: SnapshotFormat { get }
    /// Takes a snapshot now and returns once it is complete and listed. Blocking; call it off any event loop.
    func takeSnapshot(format: SnapshotFormat, kind: SnapshotKind, label: String?, progress: ProgressHandler?) throws(StoreError) -> Snapshot
    /// Whether the store holds snapshots of many jobs, each with its own recovery point: the mount then shows
    /// `by-job/<job>/` beside the flat root.
    var groupsSnapshotsByJob: Bool { get }
}

extension SnapshotEngine {
    /// An engine of one job (the local engine) has nothing to group.
    public var groupsSnapshotsByJob: Bool { false }
}

/// The words a trigger may use for a format (SPEC §4 `trigger/`): the three formats and `default`.
public enum TriggerFormat: String, CaseIterable, Sendable {
    case canonical
    case nativeFull = "native-full"
    case nativeIncremental = "native-incremental"
    case `default`

    public func resolve(for engine: any SnapshotEngine) -> SnapshotFormat {
        switch self {
        case .canonical: return .canonical
        case .nativeFull: return .nativeFull
        case .nativeIncremental: return .nativeIncremental
        case .default: return engine.defaultFormat
        }
    }
}

extension Store {
    /// A user-induced snapshot on request, with its request record (`.snapfs/requests/<seq>.json`) kept from start
    /// to end. Returns the request as it finished; `state` says whether the snapshot was taken.
    @discardableResult
    public func requestSnapshot(engine: any SnapshotEngine, format: TriggerFormat, label: String?, source: String,
                                progress: ProgressHandler? = nil) throws(StoreError) -> (SnapshotRequest, Result<Snapshot, StoreError>) {
        if let label {
            do { try SnapshotName.validateLabel(label) } catch {
                recordEvent("refusal", snapshot: nil, "trigger \(format.rawValue) refused: \(error)")
                throw error
            }
        }
        let req = try openRequest(format: format.rawValue, label: label, source: source)
        updateRequest(req.seq, state: .running)
        let result: Result<Snapshot, StoreError>
        do {
            let s = try engine.takeSnapshot(format: format.resolve(for: engine), kind: .user, label: label, progress: progress)
            updateRequest(req.seq, state: .complete, snapshot: s.name)
            StoreMetrics.tookSnapshot(source: source)
            result = .success(s)
        } catch {
            updateRequest(req.seq, state: .failed, snapshot: label, error: error.description)
            result = .failure(error)
        }
        return (request(req.seq) ?? req, result)
    }
}
