import Foundation
import GRDB

/// The physical half of deletes and `gc` for a store whose files are on an object store (`StoreFiles` that is not
/// local): the same journal and the same checks as on a file system, with removals sent in batches of at most
/// `remoteDrainBatch` paths (one S3 DeleteObjects request each).
extension Store {
    /// Paths per batch: S3's DeleteObjects takes at most 1,000 keys.
    static let remoteDrainBatch = 1_000

    /// Drains the removal journal through `files`. Each batch is one write transaction: which of its paths are
    /// objects again is asked under the lock (an import cannot take one back between the check and the delete),
    /// the batch goes out, and only the paths the server reported removed leave the journal. A crash or a server
    /// that stops answering mid-batch leaves the batch journalled: the next command sends it again (removing a key
    /// already gone is a success), so nothing decided is lost and nothing undecided is removed. A refusal of the
    /// whole request (403) stops the drain with the server's message.
    func drainRemoteRemovals() {
        do {
            let journal = try db.read { db in
                try Row.fetchAll(db, sql: "SELECT path, is_directory, failure FROM removals ORDER BY path")
                    .map { (path: $0["path"] as String, isDirectory: ($0["is_directory"] as Int) != 0, failure: $0["failure"] as String?) }
            }
            var start = 0
            while start < journal.count {
                let batch = journal[start..<min(start + Self.remoteDrainBatch, journal.count)]
                start += batch.count
                try db.write { db in
                    let inUse = Set(try String.fetchAll(db, sql: """
                        SELECT o.path FROM objects o WHERE o.path IN (SELECT value FROM json_each(?))
                        """, arguments: [try Self.jsonArray(batch.filter { !$0.isDirectory }.map(\.path))]))
                    var done: [String] = []
                    var send: [String] = []
                    // An object store has no directories: a journalled one is done once its files are.
                    for r in batch {
                        if r.isDirectory || !Store.isSafeRelativePath(r.path) || inUse.contains(r.path) { done.append(r.path) } else { send.append(r.path) }
                    }
                    let failures = send.isEmpty ? [:] : try files.remove(send)
                    var failed: [String: String] = [:]
                    for p in send {
                        guard let why = failures[p] else { done.append(p); continue }
                        let previous = batch.first { $0.path == p }?.failure
                        if previous != why {
                            logger.error("cannot remove \(files.absolute(p)): \(why); it stays in the removal journal and is retried at every open and gc")
                            failed[p] = why
                        }
                    }
                    try db.execute(sql: "DELETE FROM removals WHERE path IN (SELECT value FROM json_each(?))", arguments: [try Self.jsonArray(done)])
                    if !failed.isEmpty {
                        try db.execute(sql: """
                            UPDATE removals SET failure = (SELECT f.value FROM json_each(?1) f WHERE f.key = removals.path)
                            WHERE path IN (SELECT key FROM json_each(?1))
                            """, arguments: [try Self.jsonObject(failed)])
                    }
                }
            }
        } catch let e as StoreError {
            logger.error("\(e); the removals stay journalled and are sent again at the next command")
        } catch {
            logger.error("cannot update removal journal: \(error)")
        }
    }

    /// Removes a batch of paths now, through the removal journal: recorded first (in one transaction, skipping any
    /// the catalog names as an object), then drained. Returns the paths that are gone.
    func removeThroughJournal(_ paths: [String]) throws(StoreError) -> Set<String> {
        do {
            try db.write { db in
                let now = Date().timeIntervalSince1970
                try db.execute(sql: """
                    INSERT OR IGNORE INTO removals(path, is_directory, queued_at)
                    SELECT value, 0, ? FROM json_each(?) WHERE value NOT IN (SELECT path FROM objects)
                    """, arguments: [now, try Self.jsonArray(paths)])
            }
        } catch { throw .wrap(error, "cannot journal removals") }
        drainRemovals()
        let left: Set<String>
        do { left = Set(try db.read { try String.fetchAll($0, sql: "SELECT path FROM removals") }) }
        catch { throw .wrap(error, "cannot read catalog") }
        return Set(paths.filter { !left.contains($0) })
    }

    /// `gc` on an object store: the unreferenced files come from a listing of the managed roots (the catalog and
    /// `_metadata` decide what is referenced; a listing only says what exists), their age from the listing's
    /// times, and the ones old enough go through the journal in DeleteObjects batches.
    func remoteGC(grace: TimeInterval, writtenTogether: ((String) -> String?)?) throws(StoreError) -> GCReport {
        var report = GCReport(removedFiles: [], removedBytes: 0, keptYoungerThanGrace: [])
        let candidates = try unreferencedFiles()
        let now = Date().timeIntervalSince1970
        var unitAge: [String: TimeInterval] = [:]
        if let writtenTogether {
            for f in candidates {
                guard let unit = writtenTogether(f.path), unitAge[unit] == nil else { continue }
                let newest = try files.list(unit, recursive: true, startAfter: nil).files.values.map(\.mtime).max() ?? 0
                unitAge[unit] = now - newest
            }
        }
        var old: [(path: String, size: Int64)] = []
        for f in candidates {
            let age = writtenTogether?(f.path).flatMap { unitAge[$0] }.map { min($0, f.age) } ?? f.age
            if age < grace { report.keptYoungerThanGrace.append(f.path) } else { old.append((f.path, f.size)) }
        }
        let gone = try removeThroughJournal(old.map(\.path))
        for f in old where gone.contains(f.path) {
            report.removedFiles.append(f.path)
            report.removedBytes += f.size
        }
        if !report.removedFiles.isEmpty {
            recordEvent("gc", snapshot: nil, "removed \(report.removedFiles.count) unreferenced files (\(report.removedBytes) bytes) from \(files.location)")
        }
        return report
    }

    /// What the catalog already knows of files it holds as objects: size and the newest entry's mtime, by path. On an
    /// object store a file Flink wrote is never rewritten, so a checkpoint naming files earlier ones adopted needs
    /// no request for them: only its new files are asked for.
    public func knownFiles(_ paths: [String]) throws(StoreError) -> [String: StoreFileStat] {
        do {
            return try db.read { db in
                var out: [String: StoreFileStat] = [:]
                let rows = try Row.fetchAll(db, sql: """
                    SELECT o.path, o.size, MAX(e.mtime_ns) AS mtime FROM objects o LEFT JOIN entries e ON e.object_id = o.id
                    WHERE o.path IN (SELECT value FROM json_each(?)) AND o.pending_snapshot IS NULL GROUP BY o.id
                    """, arguments: [try Self.jsonArray(paths)])
                for r in rows { out[r["path"]] = StoreFileStat(size: r["size"], mtimeNanos: (r["mtime"] as Int64?) ?? 0) }
                return out
            }
        } catch { throw .wrap(error, "cannot read catalog") }
    }

    // MARK: move

    /// A snapshot directory's move on an object store, which cannot rename: every file is copied server-side to the
    /// new directory, the catalog is switched to it in one transaction that also journals the old copies for
    /// removal, and the journal is drained (DeleteObjects, checked as any delete). The move was journalled before
    /// the first copy, so a crash is finished or rolled back by the next open (`recoverRemoteMove`).
    func moveRemote(_ move: PendingMove) throws(StoreError) {
        do {
            let source = try files.list(move.from, recursive: true)
            for path in source.files.keys.sorted() {
                try files.copy(path, to: move.to + "/" + path.dropFirst(move.from.count + 1))
            }
            try finishMove(move, removing: source.files.keys.sorted())
        } catch {
            logger.error("move of \(move.oldName) interrupted: \(error); the next open finishes or rolls it back")
            throw error
        }
        drainRemovals()
    }

    /// Finishes a move whose every file reached the new directory with its size, else rolls it back (the copies
    /// made so far journalled for removal; the old directory untouched).
    func recoverRemoteMove(_ move: PendingMove) throws(StoreError) {
        let source = try files.list(move.from, recursive: true).files
        let target = try files.list(move.to, recursive: true).files
        let copied = !source.isEmpty && source.allSatisfy { path, st in target[move.to + "/" + path.dropFirst(move.from.count + 1)]?.size == st.size }
        if copied || (source.isEmpty && !target.isEmpty) {
            try finishMove(move, removing: source.keys.sorted())
            logger.notice("finished an interrupted move", metadata: ["snapshot": .string(move.newName)])
        } else {
            do {
                try db.write { db in
                    try db.execute(sql: "DELETE FROM meta WHERE key = ?", arguments: [Self.pendingMoveKey])
                    let now = Date().timeIntervalSince1970
                    for p in target.keys { try db.execute(sql: "INSERT OR REPLACE INTO removals(path, is_directory, queued_at) VALUES (?, 0, ?)", arguments: [p, now]) }
                    try insertEvent(db, "rollback", move.oldName, "move to '\(move.newName)' interrupted before every file was copied; rolled back")
                }
            } catch { throw .wrap(error, "cannot roll back the move of \(move.oldName)") }
        }
    }
}
