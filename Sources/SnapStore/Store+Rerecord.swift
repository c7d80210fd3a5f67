import Foundation
import GRDB
#if canImport(Glibc)
import Glibc
#endif

extension Store {
    /// Replaces the file set of a complete snapshot whose engine rewrote its description in place (a Flink
    /// `_metadata` repaired to name its files where they are), in one transaction: the new entries, their objects
    /// (files already in the store, adopted as they are: an entry of type `.file` with no `object` is the file at
    /// its own path), and an event. Objects only the old entries used leave the catalog; no file is touched, so
    /// `verify` and `gc` judge what is left like any other file. Holds, name, kind and times stay.
    public func replaceEntries(of name: String, with entries: [NewEntry], event: String, _ detail: String) throws(StoreError) {
        try requireWritable("\(event) \(name)")
        var seen = Set<String>()
        for e in entries {
            guard Store.isSafeRelativePath(e.path) else { throw .badInput("entry path '\(e.path)' is not a relative path inside the store") }
            guard seen.insert(e.path).inserted else { throw .badInput("entry path '\(e.path)' appears twice") }
        }
        do {
            try db.write { db in
                guard let s = try Snapshot.fetchOne(db, sql: "SELECT \(Snapshot.columns) FROM snapshots WHERE name = ?", arguments: [name]) else {
                    throw StoreError.noSuchSnapshot(name)
                }
                if s.state != .complete { throw StoreError.busy(snapshot: name, reason: "still being written") }
                let old = try ObjectID.fetchAll(db, sql: "SELECT object_id FROM entries WHERE snapshot_id = ? AND object_id IS NOT NULL", arguments: [s.id])
                try db.execute(sql: "DELETE FROM entries WHERE snapshot_id = ?", arguments: [s.id])
                let now = Date().timeIntervalSince1970
                let ins = try db.makeStatement(sql: """
                    INSERT INTO entries(snapshot_id, path, type, size, mode, mtime_ns, object_id, symlink_target, hidden, rdev,
                                        size_rule, required_size)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                    """)
                for e in entries {
                    var object = e.object
                    if e.type == .file && object == nil {
                        if let id = try ObjectID.fetchOne(db, sql: "SELECT id FROM objects WHERE path = ?", arguments: [e.path]) {
                            object = id
                        } else {
                            // Not pending: the file is the engine's, never queued for removal by a rollback.
                            try db.execute(sql: "INSERT INTO objects(path, size, pending_snapshot, created_at) VALUES (?, ?, NULL, ?)",
                                           arguments: [e.path, e.size, now])
                            object = db.lastInsertedRowID
                        }
                    }
                    let required = e.requiredSize == e.size ? nil : e.requiredSize
                    try ins.execute(arguments: [s.id, e.path, e.type.rawValue, e.size, Int64(e.mode), e.mtimeNanos,
                                                object, e.symlinkTarget, e.hidden ? 1 : 0, e.rdev.map { Int64(bitPattern: $0) },
                                                e.sizeRule.rawValue, required])
                }
                for id in Set(old) {
                    try db.execute(sql: """
                        DELETE FROM objects WHERE id = ? AND pending_snapshot IS NULL
                          AND NOT EXISTS (SELECT 1 FROM entries e WHERE e.object_id = objects.id)
                          AND NOT EXISTS (SELECT 1 FROM object_pins p WHERE p.object_id = objects.id)
                        """, arguments: [id])
                }
                try insertEvent(db, event, name, detail)
                try db.bumpGeneration()
                // A reader that caches a snapshot's entries (the mount) learns which to read again.
                let generation = try Int64.fetchOne(db, sql: "SELECT CAST(value AS INTEGER) FROM meta WHERE key = 'generation'") ?? 0
                let previous = try String.fetchOne(db, sql: "SELECT value FROM meta WHERE key = ?", arguments: [Self.entriesChangedKey])
                var stamps = previous.flatMap { try? JSONDecoder().decode([[Int64]].self, from: Data($0.utf8)) } ?? []
                stamps.append([s.id, generation])
                if stamps.count > 64 { stamps.removeFirst(stamps.count - 64) }
                let text = String(decoding: try JSONEncoder().encode(stamps), as: UTF8.self)
                try db.execute(sql: "INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)", arguments: [Self.entriesChangedKey, text])
            }
        } catch let e as StoreError { throw e } catch { throw .wrap(error, "cannot record the new files of \(name)") }
    }

    static let entriesChangedKey = "entries_changed"

    /// Snapshots whose entries were replaced in place (`replaceEntries`) after catalog generation `generation`. A
    /// cache of entries older than the last 64 such changes cannot tell; `nil` then means: read them all again.
    public func entriesReplaced(after generation: Int64) -> Set<SnapshotID>? {
        guard let text = ((try? meta(Self.entriesChangedKey)) ?? nil) else { return [] }
        guard let stamps = try? JSONDecoder().decode([[Int64]].self, from: Data(text.utf8)) else { return nil }
        if stamps.count >= 64, let first = stamps.first, first.count == 2, first[1] > generation { return nil }
        return Set(stamps.compactMap { $0.count == 2 && $0[1] > generation ? $0[0] : nil })
    }
}

extension Store {
    /// Replaces the file at `directory/name` (absolute) with `data` so that a crash leaves either the old file or
    /// the new one whole: written under a hidden temporary name in the same directory, flushed, renamed over the
    /// old one, and the directory flushed.
    public static func replaceFileDurably(directory: String, name: String, _ data: Data) throws(StoreError) {
        let temporary = directory + "/." + name + ".tmp-" + String(UInt32.random(in: 0...UInt32.max), radix: 16)
        do {
            try Durability.writeFile(temporary, data)
        } catch {
            unlink(temporary)
            throw error
        }
        guard Glibc.rename(temporary, directory + "/" + name) == 0 else {
            let e = errno
            unlink(temporary)
            throw .io(path: directory + "/" + name, errno: e, what: "cannot replace")
        }
        try Durability.syncDirectory(directory)
    }
}
