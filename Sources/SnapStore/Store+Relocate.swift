import Foundation
import GRDB
#if canImport(Glibc)
import Glibc
#endif

/// A move that renames a snapshot's directory on disk as well as its name: journalled in the catalog before the
/// rename, so a crash between the rename and the catalog update is finished (the directory is at its new name) or
/// rolled back (it is still at the old one) by the next open.
struct PendingMove: Codable, Sendable {
    var snapshot: SnapshotID
    var oldName: String
    var newName: String
    /// Store-relative directories.
    var from: String
    var to: String
    /// The token of the process doing the move; its lock tells a later opener whether it is still at work.
    var owner: String
}

extension Store {
    static let pendingMoveKey = "pending_move"

    /// True while a move of a snapshot's directory is under way (or was interrupted and not yet finished): an
    /// engine that scans directories must not take the directory's new name for a new snapshot, nor its absence
    /// under the old name for a removal.
    public func hasPendingMove() -> Bool { ((try? meta(Self.pendingMoveKey)) ?? nil) != nil }

    /// Renames snapshot `s` to `newName` and its directory to `directory` (store-relative), durably: the intent is
    /// journalled, the directory renamed and both parents flushed, then the catalog (name, directory, every entry
    /// and object path under it) updated in one transaction that also clears the journal.
    func renameWithDirectory(_ s: Snapshot, to newName: String, directory target: String) throws(StoreError) {
        guard let source = s.directory else { throw .badInput("\(s.name) has no directory to move") }
        guard Store.isSafeRelativePath(target), target != source else {
            throw .badInput("'\(target)' is not a directory \(s.name) can be moved to")
        }
        var st = stat()
        if files.isLocal ? lstat(root.path + "/" + target, &st) == 0 : !(try files.list(target, recursive: true).files.isEmpty) {
            throw .badInput("\(s.name) cannot be moved to \(newName): \(target) already exists on disk")
        }
        let move = PendingMove(snapshot: s.id, oldName: s.name, newName: newName, from: source, to: target, owner: owner.token)
        guard let journal = try? String(decoding: JSONEncoder().encode(move), as: UTF8.self) else {
            throw .badInput("cannot journal the move of \(s.name)")
        }
        do {
            try db.write { db in
                guard let now = try Snapshot.fetchOne(db, sql: "SELECT \(Snapshot.columns) FROM snapshots WHERE id = ?", arguments: [s.id]),
                      now.name == s.name else {
                    throw StoreError.noSuchSnapshot(s.name)
                }
                if now.state != .complete { throw StoreError.busy(snapshot: s.name, reason: "still being written") }
                if let h = try holdRow(db, s.id) { throw StoreError.busy(snapshot: s.name, reason: h.refusal) }
                if let what = try String.fetchOne(db, sql: "SELECT what FROM pins WHERE snapshot_id = ? LIMIT 1", arguments: [s.id]) {
                    throw StoreError.busy(snapshot: s.name, reason: "in use (\(what)); its directory cannot be renamed now")
                }
                if try Bool.fetchOne(db, sql: "SELECT EXISTS(SELECT 1 FROM snapshots WHERE name = ?)", arguments: [newName]) == true {
                    throw StoreError.alreadyExists(newName)
                }
                if try String.fetchOne(db, sql: "SELECT value FROM meta WHERE key = ?", arguments: [Self.pendingMoveKey]) != nil {
                    throw StoreError.busy(snapshot: s.name, reason: "another move of a snapshot directory is under way")
                }
                try db.execute(sql: "INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)", arguments: [Self.pendingMoveKey, journal])
            }
        } catch let e as StoreError { throw e } catch { throw .wrap(error, "cannot move \(s.name)") }
        if !files.isLocal { try moveRemote(move); return }

        let sourcePath = root.path + "/" + source
        let targetPath = root.path + "/" + target
        guard Glibc.rename(sourcePath, targetPath) == 0 else {
            let e = errno
            clearPendingMove()
            throw .io(path: sourcePath, errno: e, what: "cannot rename the directory of \(s.name) to \(target):")
        }
        do {
            try Durability.syncDirectory(root.path, PathBytes.parent(target) ?? "")
            try Durability.syncDirectory(root.path, PathBytes.parent(source) ?? "")
            try finishMove(move)
        } catch {
            // The rename is done; the journal stays, and the next open (or this process's next recover) finishes it.
            logger.error("move of \(s.name) interrupted after the rename: \(error); the next open finishes it")
            throw error
        }
    }

    /// The catalog half of a move whose directory is already at its new name.
    func finishMove(_ move: PendingMove, removing old: [String] = []) throws(StoreError) {
        let fromPrefix = move.from + "/"
        let toPrefix = move.to + "/"
        do {
            try db.write { db in
                try db.execute(sql: "UPDATE snapshots SET name = ?, directory = ? WHERE id = ?", arguments: [move.newName, move.to, move.snapshot])
                try db.execute(sql: "UPDATE entries SET path = ? WHERE snapshot_id = ? AND path = ?", arguments: [move.to, move.snapshot, move.from])
                try db.execute(sql: """
                    UPDATE entries SET path = ? || substr(path, ?) WHERE snapshot_id = ? AND substr(path, 1, ?) = ?
                    """, arguments: [toPrefix, fromPrefix.utf8.count + 1, move.snapshot, fromPrefix.utf8.count, fromPrefix])
                try db.execute(sql: """
                    UPDATE objects SET path = ? || substr(path, ?) WHERE substr(path, 1, ?) = ?
                    """, arguments: [toPrefix, fromPrefix.utf8.count + 1, fromPrefix.utf8.count, fromPrefix])
                try db.execute(sql: "DELETE FROM meta WHERE key = ?", arguments: [Self.pendingMoveKey])
                // On an object store the old copies go through the removal journal (checked like any delete).
                let now = Date().timeIntervalSince1970
                for p in old { try db.execute(sql: "INSERT OR REPLACE INTO removals(path, is_directory, queued_at) VALUES (?, 0, ?)", arguments: [p, now]) }
                try insertEvent(db, "move", move.newName, "renamed '\(move.oldName)' to '\(move.newName)'; its directory \(move.from) is now \(move.to)")
                try db.bumpGeneration()
            }
        } catch let e as StoreError { throw e } catch { throw .wrap(error, "cannot record the move of \(move.oldName)") }
    }

    func clearPendingMove() {
        _ = try? db.write { try $0.execute(sql: "DELETE FROM meta WHERE key = ?", arguments: [Self.pendingMoveKey]) }
    }

    /// Finishes or rolls back a move a dead process left half done: the directory decides which.
    func recoverPendingMove() throws(StoreError) {
        guard let text = try meta(Self.pendingMoveKey) else { return }
        guard let move = try? JSONDecoder().decode(PendingMove.self, from: Data(text.utf8)) else {
            logger.error("unreadable move journal; cleared: \(text)")
            clearPendingMove()
            return
        }
        if move.owner != owner.token && OwnerLock.isAlive(move.owner, in: runDir) { return }
        if !files.isLocal { try recoverRemoteMove(move); return }
        var st = stat()
        let fromThere = lstat(root.path + "/" + move.from, &st) == 0
        let toThere = lstat(root.path + "/" + move.to, &st) == 0
        if toThere && !fromThere {
            try Durability.syncDirectory(root.path, PathBytes.parent(move.to) ?? "")
            try Durability.syncDirectory(root.path, PathBytes.parent(move.from) ?? "")
            try finishMove(move)
            logger.notice("finished an interrupted move", metadata: ["snapshot": .string(move.newName)])
        } else if fromThere && !toThere {
            do {
                try db.write { db in
                    try db.execute(sql: "DELETE FROM meta WHERE key = ?", arguments: [Self.pendingMoveKey])
                    try insertEvent(db, "rollback", move.oldName, "move to '\(move.newName)' interrupted before its directory was renamed; rolled back")
                }
            } catch { throw .wrap(error, "cannot roll back the move of \(move.oldName)") }
        } else {
            logger.error("interrupted move of \(move.oldName): \(move.from) and \(move.to) are \(fromThere ? "both" : "neither") on disk; left for a person to decide")
        }
    }
}
