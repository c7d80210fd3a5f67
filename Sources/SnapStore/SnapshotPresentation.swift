import Foundation

/// How a mount shows one snapshot's directory, when its engine has a better tree for it than the store's own
/// (store-relative paths). A Flink snapshot, for one, is shown as Flink's relocatable savepoint layout: a
/// `_metadata` naming every file relative to the snapshot's directory, and those files beside it, so a copy of the
/// directory restores from wherever it lands.
///
/// The store knows nothing of what the tree means: an engine builds it, the mount serves it.
public struct SnapshotView: Sendable, Equatable {
    /// The layout shown, in a word (`store-relative`, `relocatable`), for `.snapfs/snapshots/S.json`.
    public var layout: String
    /// Why the snapshot is shown so, in words: what a user reading the report needs to know.
    public var detail: String?
    /// The entries shown, at their paths inside the snapshot's directory. A file reads its stored object
    /// (`objectPath`, one of the snapshot's own), or just the `size` bytes of it from `objectOffset` when that is
    /// set, or, with no object, the bytes `generated` holds under its path, whose length its `size` already is.
    /// Nil: the snapshot's own entries, as the catalog has them.
    public var entries: [SnapshotEntry]?
    /// Content made for the view rather than stored, by path; never changes for a given snapshot and entry set.
    public var generated: [String: [UInt8]]

    public init(layout: String, detail: String?, entries: [SnapshotEntry]?, generated: [String: [UInt8]] = [:]) {
        self.layout = layout; self.detail = detail; self.entries = entries; self.generated = generated
    }

    /// The layout of a snapshot shown with its catalog entries.
    public static let storeRelative = "store-relative"

    /// The store's own tree, with why.
    public static func stored(_ detail: String?) -> SnapshotView {
        SnapshotView(layout: storeRelative, detail: detail, entries: nil)
    }
}

/// Decides how a mount shows each snapshot (see `SnapshotView`). Implemented by an engine that has a layout of its
/// own to show, handed to the mount when it starts; a mount without one shows every snapshot's catalog entries.
public protocol SnapshotPresenter: Sendable {
    /// The view of `snapshot`, whose catalog entries are `entries`; nil to show those entries as they are. The mount
    /// asks once per snapshot and keeps the answer until the snapshot's entries or directory change (a repair, a
    /// move), so the same snapshot must always get the same view, byte for byte.
    func view(of snapshot: Snapshot, entries: [SnapshotEntry]) -> SnapshotView?
}
