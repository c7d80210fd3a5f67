import Foundation
import SnapStore
import Synchronization

/// Snapshots shown in an engine's own layout (`SnapshotView`): a Flink snapshot as Flink's relocatable savepoint
/// layout, so that `cp -a`, `tar`, `rsync` and `mv` out of the mount leave a directory Flink restores from.
///
/// A view is asked of the engine once per snapshot and kept: its generated files (a rewritten `_metadata`) must have
/// one length for `stat` and the same bytes for every read, and making them reads and rewrites a file. It is dropped
/// when the snapshot's entries or directory change (a repair, a move) or the snapshot goes.
final class SnapshotViews: Sendable {
    private let presenter: Mutex<(any SnapshotPresenter)?> = Mutex(nil)
    /// Held while a view is made, so two lookups racing into one snapshot make it once.
    private let views: Mutex<[SnapshotID: SnapshotView]> = Mutex([:])

    func install(_ p: any SnapshotPresenter) {
        presenter.withLock { $0 = p }
        views.withLock { $0.removeAll() }
    }

    /// The view of `snapshot` (whose catalog entries are `entries`), made now if it was not yet; nil without a
    /// presenter, or when the presenter shows the catalog entries as they are.
    func view(of snapshot: Snapshot, entries: () throws(FSError) -> [SnapshotEntry]) throws(FSError) -> SnapshotView? {
        guard let p = presenter.withLock({ $0 }) else { return nil }
        return try views.withLock { v throws(FSError) -> SnapshotView? in
            if let known = v[snapshot.id] { return known }
            let made = p.view(of: snapshot, entries: try entries()) ?? .stored(nil)
            v[snapshot.id] = made
            return made
        }
    }

    /// The bytes of a generated file, if its snapshot's view is still kept.
    func generated(_ id: SnapshotID, _ path: String) -> [UInt8]? {
        views.withLock { $0[id]?.generated[path] }
    }

    /// Drops the view of `id`; returns the inode numbers of its generated files, whose cached pages the kernel must
    /// drop (a repaired snapshot's `_metadata` keeps its name and number but not its bytes).
    func forget(_ id: SnapshotID) -> [UInt64] {
        guard let gone = views.withLock({ $0.removeValue(forKey: id) }) else { return [] }
        return gone.generated.keys.map { SnapFileSystem.generatedInode(id, $0) }
    }

    /// Drops the views of snapshots no longer listed.
    func keep(only live: Set<SnapshotID>) {
        views.withLock { v in for id in v.keys where !live.contains(id) { v[id] = nil } }
    }
}

extension SnapFileSystem {
    /// Installs how each snapshot is shown (see `SnapshotView`); without one, every snapshot shows its catalog
    /// entries. Set once, before the mount serves requests.
    public func setPresenter(_ presenter: any SnapshotPresenter) {
        views.install(presenter)
        state.withLock { $0.indexes.removeAll() }
    }

    /// The inode number of a generated file: one per snapshot and path, as for any file without a stored object.
    static func generatedInode(_ id: SnapshotID, _ path: String) -> UInt64 { InodeNumber.hash("file:\(id):\(path)") }

    /// The entries shown for snapshot `id`: its view's when it has one, with each stored file's link count and
    /// length as the catalog has them now (they move as snapshots come and go); else the catalog's own. A view's
    /// file made of part of a stored file (`objectOffset`) is read as that byte range, at the length the view says.
    func shownEntries(_ id: SnapshotID) throws(FSError) -> [SnapshotEntry] {
        var fresh: [SnapshotEntry]?
        func catalog() throws(FSError) -> [SnapshotEntry] {
            if let fresh { return fresh }
            do { fresh = try store.entries(of: id) } catch { throw .store(error) }
            return fresh!
        }
        guard let snapshot = state.withLock({ $0.listing.byID[id] }),
              let shown = try views.view(of: snapshot, entries: catalog)?.entries else { return try catalog() }
        var now: [String: SnapshotEntry] = [:]
        for e in try catalog() { if let p = e.objectPath { now[p] = e } }
        return shown.map { e in
            // A part of an object keeps the length and link count the view gave it.
            guard let p = e.objectPath, e.objectOffset == nil, let current = now[p] else { return e }
            var updated = e
            updated.links = current.links
            updated.size = current.size
            updated.mtimeNanos = current.mtimeNanos
            return updated
        }
    }

    /// How snapshot `id` is shown, for its report: its layout and why.
    func viewSummary(_ id: SnapshotID) -> SnapshotView {
        guard let snapshot = state.withLock({ $0.listing.byID[id] }) else { return .stored(nil) }
        let store = self.store
        func catalog() throws(FSError) -> [SnapshotEntry] {
            do { return try store.entries(of: id) } catch { throw .store(error) }
        }
        let view = try? views.view(of: snapshot, entries: catalog)
        return view ?? .stored(nil)
    }
}
