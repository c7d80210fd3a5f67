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
        try checkSeparate(state: URL(fileURLWithPath: dir), store: store.root)
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

    /// Refuses a store inside the state directory and a state directory inside the store, however they are reached
    /// (symbolic links, `..`): each snapshot of the state would then hold the store, and so every earlier snapshot.
    public static func checkSeparate(state: URL, store: URL) throws(StoreError) {
        let s = realPath(state.path), t = realPath(store.path)
        func within(_ inner: String, _ outer: String) -> Bool { inner == outer || inner.hasPrefix(outer == "/" ? "/" : outer + "/") }
        if within(t, s) {
            throw .badInput("the store \(store.path) is inside the state directory \(state.path)\(t != store.path ? " (resolved: \(t) in \(s))" : ""): every snapshot would contain the store and all earlier snapshots; put the store elsewhere")
        }
        if within(s, t) {
            throw .badInput("the state directory \(state.path) is inside the store \(store.path)\(s != state.path ? " (resolved: \(s) in \(t))" : ""): the store owns everything under it; put the state elsewhere")
        }
    }

    /// The canonical path of `path`, or of its nearest existing ancestor with the rest appended (a store not created yet).
    static func realPath(_ path: String) -> String {
        var head = URL(fileURLWithPath: path).standardizedFileURL.path
        var tail: [String] = []
        while true {
            if let r = realpath(head, nil) {
                defer { free(r) }
                let base = String(cString: r)
                return tail.isEmpty ? base : (base == "/" ? "" : base) + "/" + tail.reversed().joined(separator: "/")
            }
            guard head != "/" && !head.isEmpty else { return path }
            tail.append((head as NSString).lastPathComponent)
            head = (head as NSString).deletingLastPathComponent
        }
    }

    /// The base an incremental snapshot shares files with: the newest complete native snapshot of this store.
    private func newestNativeSnapshot() throws(StoreError) -> Snapshot? {
        try store.snapshots().filter { $0.format != .canonical }.max { ($0.completedAt ?? 0, $0.id) < ($1.completedAt ?? 0, $1.id) }
    }
}
