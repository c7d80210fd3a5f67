import FlinkMetadata
import FlinkMetadataWriter
import Foundation
import SnapStore
#if canImport(Glibc)
import Glibc
#endif

/// Shows each Flink snapshot in the mount as Flink's relocatable savepoint layout: `S/_metadata` is the snapshot's
/// `_metadata` with every handle relative to `S/`, in the version the snapshot had, and every file it needs is at
/// `S/<name>`, the name that `_metadata` uses, reading the store's own bytes. The names are the ones
/// `snapfs convert --to self-contained` gives its copies (`SelfContainedPlan`), so both give one layout.
///
/// Whatever copies the directory (`cp -a`, `tar`, `rsync`, coreutils `mv` out of the mount) leaves a tree that
/// `flink run -s COPY` restores from, and `flink run -s MOUNT/S` restores from the mount itself. The store's own
/// paths stay in the catalog (`snapfs show --files`) and on each file as `user.snapfs.object`.
///
/// A file-merging snapshot is shown so too: each segment it reads (Flink names a segment's physical file by absolute
/// path only) is a file of its own, `S/<physical file>-<start>-<length>`, whose bytes are read as that range of the
/// stored physical file, and `_metadata` names it by a relative file handle, as `convert` writes it.
///
/// A snapshot Flink cannot name relatively keeps the store-relative view, and its report says why: files outside the
/// store, a `_metadata` that no longer reads.
public struct FlinkRelocatableView: SnapshotPresenter {
    let store: Store
    let settings: FlinkStoreSettings

    public init(engine: FlinkEngine) {
        self.store = engine.store
        self.settings = engine.settings
    }

    /// The layout's name in `.snapfs/snapshots/S.json`.
    public static let layout = "relocatable"

    public func view(of snapshot: Snapshot, entries: [SnapshotEntry]) -> SnapshotView? {
        guard snapshot.engine == FlinkStoreSettings.engineName, let directory = snapshot.directory else { return nil }
        let importer = FlinkImporter(store: store, settings: settings)
        let metadata: CheckpointMetadata
        do { (metadata, _, _) = try importer.readMetadata(directory) } catch {
            return .stored("its _metadata cannot be read (\(error)); shown at the store's paths")
        }
        // Handles resolve as the importer resolves them: against the store's own location, a directory on disk or
        // an s3:// prefix.
        let plan: SelfContainedPlan
        do {
            plan = try SelfContainedPlan.make(metadata, metadataDirectory: store.files.absolute(directory), pathMap: settings.metadataPathMap)
        } catch let error as HandleRewriteError {
            return .stored("shown at the store's paths, not relocatable: \(error.reason) (\(error.file)); a copy restores only where the store is")
        } catch {
            return .stored("shown at the store's paths, not relocatable: \(error)")
        }
        let files = Dictionary(entries.filter { $0.type == .file }.map { ($0.path, $0) }, uniquingKeysWith: { a, _ in a })
        var shown: [SnapshotEntry] = []
        var named = Set<String>()
        for copy in plan.copies where named.insert(copy.relativePath).inserted {
            guard let relative = store.files.relative(ofAbsolute: copy.source), var entry = files[relative] else {
                return .stored("shown at the store's paths, not relocatable: it names \(copy.source), which is not one of the store's files")
            }
            entry.path = copy.relativePath
            if let offset = copy.offset {
                // A file-merging segment: a file of its own, the segment's bytes of the stored physical file.
                entry.objectOffset = offset
                entry.size = copy.size
                entry.requiredSize = copy.size
                entry.sizeRule = .exact
                entry.links = 1
                entry.blocks = nil
                entry.sha256 = nil
            }
            shown.append(entry)
        }
        let segments = plan.copies.filter { $0.offset != nil }.count
        let original = files[directory + "/_metadata"]
        shown.append(SnapshotEntry(
            path: "_metadata", type: .file, size: Int64(plan.metadata.count), mode: original?.mode ?? (UInt32(S_IFREG) | 0o644),
            mtimeNanos: original?.mtimeNanos ?? Int64(snapshot.createdAt * 1e9)))
        return SnapshotView(
            layout: Self.layout,
            detail: "Flink's relocatable savepoint layout: _metadata (version \(metadata.version)) names each of the "
                + "\(named.count) files beside it relative to this directory"
                + (segments > 0 ? " (\(segments) of them file-merging segments, each its own file)" : "")
                + ", so a copy restores from wherever it is "
                + "(flink run -s COPY); the store's paths: snapfs show NAME --files, or user.snapfs.object on each file",
            entries: shown, generated: ["_metadata": plan.metadata])
    }
}
