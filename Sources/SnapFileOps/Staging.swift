import Foundation
import SnapStore

/// Unlinks inside a snapshot, remembered instead of done (SPEC §4): `rm -r S` hides the tree entry by entry and the
/// final `rmdir S` deletes the snapshot as a whole. Nothing here touches the store, so a window that passes
/// without that `rmdir`, or a restart, brings every entry back.
struct StagingArea {
    struct Staged {
        var paths: Set<String> = []
        var lastChange: Date
    }
    private(set) var bySnapshot: [SnapshotID: Staged] = [:]

    /// Drops what has waited longer than `window` since its snapshot's last unlink; returns what came back.
    mutating func expire(now: Date, window: TimeInterval) -> [(SnapshotID, Set<String>)] {
        let old = bySnapshot.filter { now.timeIntervalSince($0.value.lastChange) >= window }
        for id in old.keys { bySnapshot[id] = nil }
        return old.map { ($0.key, $0.value.paths) }
    }

    func isEmpty(_ id: SnapshotID) -> Bool { bySnapshot[id]?.paths.isEmpty ?? true }

    /// Whether `path` or one of its parents was staged.
    func hides(_ id: SnapshotID, _ path: String) -> Bool {
        guard let s = bySnapshot[id], !s.paths.isEmpty else { return false }
        var p: String? = path
        while let here = p {
            if s.paths.contains(here) { return true }
            p = PathBytes.parent(here)
        }
        return false
    }

    mutating func stage(_ id: SnapshotID, _ path: String, now: Date) {
        bySnapshot[id, default: Staged(lastChange: now)].paths.insert(path)
        bySnapshot[id]?.lastChange = now
    }

    mutating func clear(_ id: SnapshotID) { bySnapshot[id] = nil }

    var counts: [SnapshotID: Int] { bySnapshot.mapValues(\.paths.count) }
}
