import Foundation
import SnapStore
#if canImport(Glibc)
import Glibc
#endif

/// Whether each snapshot could be restored by Flink, and which files no snapshot needs.
public struct FlinkVerifyReport: Codable, Sendable {
    public struct Problem: Codable, Sendable, Hashable {
        /// Store-relative path (or an absolute one for a file outside the store).
        public var path: String
        /// "missing", or the size found against the size Flink's rule for the file asks.
        public var problem: String
    }

    public struct SnapshotResult: Codable, Sendable {
        public var name: String
        public var directory: String?
        public var job: String?
        public var kind: SnapshotKind
        public var format: SnapshotFormat
        /// Every file Flink would open to restore it is present with its recorded size.
        public var restorable: Bool
        public var files: Int
        public var problems: [Problem]
    }

    public var snapshots: [SnapshotResult]
    /// Snapshot directories whose `_metadata` does not decode: not restorable, and their files are not protected.
    public var unreadable: [UnreadableSnapshot]
    /// Files in the store's snapshot directories that no snapshot needs (orphans Flink left): `snapfs gc` removes them.
    public var unreferenced: [String]
    public var pendingRemovals: Int

    /// Names of the snapshots Flink could not restore (also in `snapshots`), so scripts need not filter.
    public var notRestorable: [String]
    public var clean: Bool { notRestorable.isEmpty && unreadable.isEmpty && unreferenced.isEmpty }

    public init(snapshots: [SnapshotResult], unreadable: [UnreadableSnapshot], unreferenced: [String], pendingRemovals: Int) {
        self.snapshots = snapshots
        self.unreadable = unreadable
        self.unreferenced = unreferenced
        self.pendingRemovals = pendingRemovals
        self.notRestorable = snapshots.filter { !$0.restorable }.map(\.name)
    }
}

/// Models Flink's restore: a snapshot is restorable when every file its `_metadata` names, resolved as Flink
/// resolves it, is there with the length Flink's rule for it asks: exactly the recorded size for a whole file, at
/// least the furthest segment end for a file-merging physical file, at least the handle's size for a changelog file. Flink's own listing and REST API say nothing when a CLAIM
/// restore has removed files another snapshot still needs; this is how a user finds out before a restore fails.
public struct FlinkVerifier: Sendable {
    public let store: Store
    public let settings: FlinkStoreSettings

    public init(store: Store, settings: FlinkStoreSettings) {
        self.store = store
        self.settings = settings
    }

    public func verify() throws(StoreError) -> FlinkVerifyReport {
        let imported = try FlinkImporter(store: store, settings: settings).refresh(full: true)
        var results: [FlinkVerifyReport.SnapshotResult] = []
        // On an object store every file is asked at once (one listing, HEAD for what it lacks), not one by one.
        var remote: [String: StoreFileStat?]?
        if !store.files.isLocal {
            var paths = Set<String>()
            for s in try store.snapshots() {
                for e in try store.entries(of: s.id) where e.type == .file { paths.insert(e.objectPath ?? e.path) }
            }
            let ordered = paths.sorted()
            remote = Dictionary(uniqueKeysWithValues: zip(ordered, try store.files.stat(ordered)))
        }
        for s in try store.snapshots() {
            var problems: [FlinkVerifyReport.Problem] = []
            var files = 0
            for e in try store.entries(of: s.id, includeHidden: true) {
                let path: String
                let shown: String
                switch e.type {
                case .file:
                    shown = e.objectPath ?? e.path
                    path = store.root.path + "/" + shown
                case .symlink where e.hidden:
                    guard let target = e.symlinkTarget else { continue }
                    shown = target
                    path = target
                default:
                    continue
                }
                files += 1
                if let remote, e.type == .file {
                    if let found = remote[shown] ?? nil {
                        if !e.sizeRule.accepts(found.size, required: e.requiredSize) {
                            let expected = e.sizeRule == .exact ? "\(e.requiredSize)" : "at least \(e.requiredSize)"
                            problems.append(.init(path: shown, problem: "size \(found.size), expected \(expected)"))
                        }
                    } else {
                        problems.append(.init(path: shown, problem: "missing"))
                    }
                    continue
                }
                var st = stat()
                if stat(path, &st) != 0 {
                    problems.append(.init(path: shown, problem: errno == ENOENT ? "missing" : "unreadable: \(String(cString: strerror(errno)))"))
                } else if !e.sizeRule.accepts(Int64(st.st_size), required: e.requiredSize) {
                    let expected = e.sizeRule == .exact ? "\(e.requiredSize)" : "at least \(e.requiredSize)"
                    problems.append(.init(path: shown, problem: "size \(st.st_size), expected \(expected)"))
                }
            }
            results.append(.init(name: s.name, directory: s.directory, job: s.job, kind: s.kind, format: s.format,
                                 restorable: problems.isEmpty, files: files, problems: problems))
        }
        let generic = try store.verify(checksums: false)
        return FlinkVerifyReport(snapshots: results, unreadable: imported.unreadable, unreferenced: generic.unreferenced,
                                 pendingRemovals: generic.pendingRemovals)
    }
}
