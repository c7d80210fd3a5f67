import Foundation
import SnapStore

/// One snapshot's logical tree, indexed for lookups by path. Built once per snapshot from the catalog and cached:
/// a snapshot's content never changes, only how many snapshots share each object (`links`), so the index is
/// dropped only when the set of snapshots changes, and rebuilt on the next access.
final class SnapshotIndex: Sendable {
    let id: SnapshotID
    let entries: [String: SnapshotEntry]
    /// Child names of each directory path ("" is the snapshot's top), sorted.
    let children: [String: [String]]
    /// How many of each directory's children are directories (its link count is 2 more). Counted once here: the
    /// kernel asks for a directory's attributes again after every uncached listing of it (reading a directory
    /// invalidates its atime), and counting 1,000 children on each of those requests cost about a millisecond.
    private let subdirectories: [String: Int]

    init(id: SnapshotID, entries list: [SnapshotEntry]) {
        self.id = id
        // Sized up front: growing these tables one doubling at a time was a third of the time the first lookup in a
        // snapshot of 100,000 files took.
        var entries = [String: SnapshotEntry](minimumCapacity: list.count + 1)
        var children = [String: Set<String>](minimumCapacity: list.reduce(1) { $1.type == .directory ? $0 + 1 : $0 })
        children[""] = []
        for e in list where !e.hidden {
            entries[e.path] = e
            // Parents a catalog did not list explicitly still exist in the tree. The walk up stops at the first
            // parent that already lists this name: everything above it was linked when that name was first seen.
            var path = e.path
            while !path.isEmpty {
                let (parent, name) = SnapshotIndex.split(path)
                guard children[parent, default: []].insert(name).inserted, !parent.isEmpty else { break }
                if entries[parent] == nil {
                    entries[parent] = SnapshotEntry(path: parent, type: .directory, size: 0, mode: 0o040755, mtimeNanos: e.mtimeNanos)
                }
                path = parent
            }
            if e.type == .directory, children[e.path] == nil { children[e.path] = [] }
        }
        var subdirectories: [String: Int] = [:]
        for (path, e) in entries where e.type == .directory && !path.isEmpty {
            subdirectories[SnapshotIndex.split(path).parent, default: 0] += 1
        }
        self.entries = entries
        self.children = children.mapValues { $0.sorted() }
        self.subdirectories = subdirectories
    }

    /// Cut at the byte "/" (`PathBytes`): building the index with a search by Character took a twelfth longer, and
    /// put a name that starts with a combining mark in the wrong directory.
    static func split(_ path: String) -> (parent: String, name: String) { PathBytes.split(path) }

    static func join(_ parent: String, _ name: String) -> String { parent.isEmpty ? name : parent + "/" + name }

    func subdirectoryCount(_ dir: String) -> Int { subdirectories[dir] ?? 0 }
}
