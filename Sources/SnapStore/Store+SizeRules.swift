import Foundation
import GRDB

/// A file entry's length as an engine re-derives it for a snapshot already recorded.
public struct EntryLength: Sendable {
    public var path: String
    /// What the file holds now (served by the mount).
    public var size: Int64
    public var sizeRule: SizeRule
    /// What the snapshot needs under `sizeRule`.
    public var requiredSize: Int64

    public init(path: String, size: Int64, sizeRule: SizeRule, requiredSize: Int64) {
        self.path = path; self.size = size; self.sizeRule = sizeRule; self.requiredSize = requiredSize
    }
}

extension Store {
    /// Rewrites the length and size rule of existing file entries of one snapshot, leaving everything else alone.
    /// For an engine that learned how its files' lengths are to be read after it recorded them (a catalog written
    /// before entries had size rules): without it, such entries would keep serving a length that cuts files short.
    /// Paths the snapshot does not hold as files are ignored.
    public func updateEntryLengths(of id: SnapshotID, _ lengths: [EntryLength]) throws(StoreError) {
        guard !lengths.isEmpty else { return }
        do {
            try db.write { db in
                let upd = try db.makeStatement(sql: """
                    UPDATE entries SET size = ?, size_rule = ?, required_size = ?
                    WHERE snapshot_id = ? AND path = ? AND type IN ('file', 'symlink')
                    """)
                for l in lengths {
                    try upd.execute(arguments: [l.size, l.sizeRule.rawValue, l.requiredSize == l.size ? nil : l.requiredSize, id, l.path])
                }
                try db.bumpGeneration()
            }
        } catch { throw .wrap(error, "cannot update the entries of snapshot \(id)") }
    }
}
