import Foundation
import Logging
import SnapStore
import Synchronization

/// The embedded engine: the job is a state directory on this machine, and a snapshot is a copy of it taken through
/// the store's builder. Incremental snapshots reference every file unchanged since the newest native snapshot.
public final class LocalEngine: SnapshotEngine {
    public let store: Store
    public let stateDirectory: URL
    public let defaultFormat: SnapshotFormat
    public var name: String { "local" }
    /// One snapshot at a time per process, so a checkpoint and a trigger never race for the same base.
    private let serial = Mutex(())

    public init(store: Store, stateDirectory: URL, defaultFormat: SnapshotFormat = .nativeIncremental) {
        self.store = store
        self.stateDirectory = stateDirectory.standardizedFileURL
        self.defaultFormat = defaultFormat
    }

    /// The engine a local store was created for: its state directory and default format come from the catalog.
    public static func forStore(_ store: Store, stateOverride: String? = nil) throws(StoreError) -> LocalEngine {
        let recorded = try store.meta("state_dir")
        guard let dir = stateOverride ?? recorded else {
            throw .badInput("the store at \(store.root.path) has no state directory: pass --state DIR")
        }
        var fmt = SnapshotFormat.nativeIncremental
        if let s = try store.meta("default_format") { fmt = try SnapshotFormat(userInput: s) }
        return LocalEngine(store: store, stateDirectory: URL(fileURLWithPath: dir), defaultFormat: fmt)
    }

    public func takeSnapshot(format: SnapshotFormat, kind: SnapshotKind, label: String?, progress: ProgressHandler?) throws(StoreError) -> Snapshot {
        try serial.withLock { _ throws(StoreError) -> Snapshot in
            let base = format == .nativeIncremental ? try newestNativeSnapshot() : nil
            return try SnapshotBuilder(store: store).build(from: FileTreeSource(root: stateDirectory), format: format, kind: kind,
                                                           label: label, job: "local:\(stateDirectory.path)", base: base, progress: progress)
        }
    }

    /// The base an incremental snapshot shares files with: the newest complete native snapshot of this store.
    private func newestNativeSnapshot() throws(StoreError) -> Snapshot? {
        try store.snapshots().filter { $0.format != .canonical }.max { ($0.completedAt ?? 0, $0.id) < ($1.completedAt ?? 0, $1.id) }
    }
}
