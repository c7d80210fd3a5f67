import Foundation
import GRDB
#if canImport(Glibc)
import Glibc
#endif

/// What a delete did.
public struct DeleteSummary: Codable, Sendable, Hashable {
    public var snapshot: String
    /// Objects only this snapshot referenced, now removed.
    public var removedObjects: Int
    public var removedBytes: Int64
    /// Objects this snapshot shared with others, kept for them.
    public var keptShared: Int
}

/// Whether a snapshot may be deleted now, and if not, why (shown in `.snapfs/snapshots/S.json`).
public enum Deletability: Sendable, Hashable {
    case deletable
    case refused(String)
    /// No snapshot by that name (any more): a race with a delete elsewhere reads as ENOENT, not as a refusal.
    case gone
}

extension Store {
    /// The reason a snapshot may not be deleted now, or nil. The order is the SPEC's (§5).
    func refusalReason(_ s: Snapshot, _ db: Database, job: JobStatus) throws -> String? {
        if s.state == .writing { return "still being written" }
        if let h = try holdRow(db, s.id) { return h.refusal }
        if let owner = job.protectingJob(of: s.name) {
            return "recovery point of job \(owner.job) (\(owner.state)): newer snapshot needed first"
        }
        if job.protects(s.name) { return "recovery point: newer snapshot needed first" }
        let pins = try Row.fetchAll(db, sql: "SELECT owner, what FROM pins WHERE snapshot_id = ?", arguments: [s.id])
        for p in pins where p["owner"] as String == owner.token || OwnerLock.isAlive(p["owner"], in: runDir) {
            return "operation in flight: \(p["what"] as String)"
        }
        return nil
    }

    public func deletability(of name: String) -> Deletability {
        let job = jobStatus()
        do {
            return try db.read { db in
                guard let s = try Snapshot.fetchOne(db, sql: "SELECT \(Snapshot.columns) FROM snapshots WHERE name = ?", arguments: [name]) else {
                    return .gone
                }
                return try refusalReason(s, db, job: job).map(Deletability.refused) ?? .deletable
            }
        } catch { return .refused("catalog unreadable: \(error)") }
    }

    /// Deletes a snapshot (SPEC §5). The decision — which objects no remaining snapshot references — is one
    /// transaction; the files follow from the removal journal, which `open` replays if the process dies first.
    @discardableResult
    public func delete(_ name: String, reason: String = "user request") throws(StoreError) -> DeleteSummary {
        let plan = try delete([name], reason: reason)
        if !plan.missing.isEmpty { throw .noSuchSnapshot(name) }
        if let r = plan.refused.first { throw .busy(snapshot: name, reason: r.reason) }
        return plan.summary(of: name)
    }

    /// Deletes the snapshots named, in one transaction, or with `dryRun` only says what that would do and changes
    /// nothing (no catalog row, no file, no event). Names that are refused or missing are reported in the plan,
    /// not thrown: the others still go. Both runs plan through `planDelete`, so a dry run shows what the delete does.
    public func delete(_ names: [String], reason: String = "user request", dryRun: Bool) throws(StoreError) -> DeletePlan {
        if dryRun {
            if !isReadOnly { try hooks.refresh(self) }
            let job = jobStatus()
            do { return try db.read { db in try planDelete(db, names: names, job: job, dryRun: true).0 } }
            catch let e as StoreError { throw e } catch { throw .wrap(error, "cannot read catalog") }
        }
        return try delete(names, reason: reason)
    }

    /// Deletes the snapshots named, in one transaction; see `delete(_:reason:dryRun:)`.
    public func delete(_ names: [String], reason: String = "user request") throws(StoreError) -> DeletePlan {
        try requireWritable("delete \(names.joined(separator: ", "))")
        try hooks.refresh(self)
        var plan: DeletePlan?
        var attempt = 0
        while plan == nil {
            attempt += 1
            plan = try deleteOnce(names, reason: reason, lastAttempt: attempt >= Self.deleteAttempts)
        }
        for r in plan!.refused { recordEvent("refusal", snapshot: r.snapshot, "delete refused\(reason == "retention" || reason == "prune" ? " (\(reason))" : ""): \(r.reason)") }
        if !plan!.snapshots.isEmpty {
            logger.info("deleted", metadata: ["snapshots": .string(plan!.snapshots.joined(separator: ",")),
                                              "objects": .stringConvertible(plan!.removedFiles.count)])
        }
        StoreMetrics.deleted(plan!, reason: reason)
        drainRemovals()
        return plan!
    }

    /// How often a delete asks the engine again for the recovery point because snapshots kept completing meanwhile.
    static let deleteAttempts = 20

    /// One try at a delete: nil when a snapshot completed between asking the engine for the recovery point and the
    /// transaction, since that snapshot may be the recovery point now (a snapshot completed a moment ago must not
    /// lose its protection to an answer read just before it).
    private func deleteOnce(_ names: [String], reason: String, lastAttempt: Bool) throws(StoreError) -> DeletePlan? {
        let newestSQL = "SELECT id FROM snapshots WHERE state = 'complete' ORDER BY completed_at DESC, id DESC LIMIT 1"
        let newestBefore: SnapshotID?
        do { newestBefore = try db.read { try SnapshotID.fetchOne($0, sql: newestSQL) } }
        catch { throw .wrap(error, "cannot read catalog") }
        let job = jobStatus()
        do {
            return try db.write { db -> DeletePlan? in
                if job.protectsAny, try SnapshotID.fetchOne(db, sql: newestSQL) != newestBefore {
                    if !lastAttempt { return nil }
                    var (plan, _) = try planDelete(db, names: names, job: job, dryRun: false)
                    plan.refused += plan.snapshots.map { .init(snapshot: $0, reason: "snapshots keep completing; the recovery point cannot be settled") }
                    plan.snapshots = []; plan.removedFiles = []; plan.keptShared = []; plan.directories = []
                    plan.bytesFreed = 0; plan.catalogBytes = 0
                    return plan
                }
                let (plan, targets) = try planDelete(db, names: names, job: job, dryRun: false)
                try executeDelete(db, plan, targets)
                let together = plan.snapshots.count > 1 ? " with \(plan.snapshots.count - 1) other snapshot\(plan.snapshots.count == 2 ? "" : "s") in one delete" : ""
                for n in plan.snapshots {
                    try insertEvent(db, reason == "retention" ? "retention" : "delete", n,
                                    "deleted (\(reason))\(together): \(plan.removedFiles.count) objects removed (\(plan.catalogBytes) bytes), \(plan.keptShared.count) shared objects kept")
                }
                if !plan.snapshots.isEmpty { try db.bumpGeneration() }
                return plan
            }
        } catch let e as StoreError { throw e } catch { throw .wrap(error, "cannot delete \(names.joined(separator: ", "))") }
    }

    /// Removes a snapshot's rows and journals the objects no other snapshot references, whatever the rules say (a
    /// rollback of a snapshot being written). Runs inside a write transaction.
    func removeSnapshotRows(_ db: Database, _ s: Snapshot) throws -> DeleteSummary {
        var plan = DeletePlan.empty(dryRun: false)
        plan.snapshots = [s.name]
        try planFiles(db, &plan, [s])
        try executeDelete(db, plan, [s])
        return plan.summary(of: s.name)
    }

    /// Releases the objects snapshot `id` pinned while it was written, in the transaction that commits it. A reused
    /// object that nothing holds any more (its other snapshots were deleted meanwhile and this one did not take it
    /// after all) is removed, as that delete would have removed it; an adopted one is the engine's and stays.
    /// Returns how many objects were journalled for removal.
    func releaseObjectPins(_ db: Database, _ id: SnapshotID) throws -> Int {
        let orphans = try Row.fetchAll(db, sql: """
            SELECT o.id, o.path FROM object_pins p JOIN objects o ON o.id = p.object_id
            WHERE p.snapshot_id = ? AND p.kind = 'reuse' AND o.pending_snapshot IS NULL
              AND NOT EXISTS (SELECT 1 FROM entries e WHERE e.object_id = o.id)
              AND NOT EXISTS (SELECT 1 FROM object_pins q WHERE q.object_id = o.id AND q.snapshot_id <> p.snapshot_id)
            """, arguments: [id])
        try db.execute(sql: "DELETE FROM object_pins WHERE snapshot_id = ?", arguments: [id])
        let now = Date().timeIntervalSince1970
        for r in orphans {
            try db.execute(sql: "DELETE FROM objects WHERE id = ?", arguments: [r["id"] as Int64])
            try db.execute(sql: "INSERT OR REPLACE INTO removals(path, is_directory, queued_at) VALUES (?, 0, ?)", arguments: [r["path"] as String, now])
        }
        return orphans.count
    }

    /// Does the physical half of decided deletes. Idempotent, so two processes draining at once, or a replay after
    /// a crash, is harmless. A path the catalog has since taken back as an object is left alone. A file that cannot
    /// be removed stays in the journal and is tried again at every drain, but its failure is logged as an error only
    /// when it is new or different: a store with one stuck entry must not fill the log on every command.
    ///
    /// The journal is read once, then drained in batches of `drainBatch` paths, each one write transaction: one
    /// statement asks which of its paths are objects again, the files go, and one statement each drops the done
    /// rows and records the failures. Holding the write lock while unlinking is what makes that check safe: no
    /// writer can take a journalled path back as an object (a Flink import adopting it) between the check and the
    /// unlink. Batches keep each hold short, so a trigger or another process's command waits seconds, not the
    /// minutes a million-object delete takes; readers are never held up (WAL). The number of statements is one
    /// plus three per batch, whatever the number of files in a batch.
    public func drainRemovals() {
        if isReadOnly { return }
        if !files.isLocal { drainRemoteRemovals(); return }
        struct SyncFailed: Error { var error: any Error }
        do {
            let journal = try db.read { db in
                try Row.fetchAll(db, sql: "SELECT path, is_directory, failure FROM removals ORDER BY is_directory, length(path) DESC")
                    .map { (path: $0["path"] as String, isDirectory: ($0["is_directory"] as Int) != 0, failure: $0["failure"] as String?) }
            }
            var start = 0
            while start < journal.count {
                let batch = journal[start..<min(start + Self.drainBatch, journal.count)]
                start += batch.count
                try db.write { db in
                    let inUse = Set(try String.fetchAll(db, sql: """
                        SELECT o.path FROM objects o WHERE o.path IN (SELECT value FROM json_each(?))
                        """, arguments: [try Self.jsonArray(batch.filter { !$0.isDirectory }.map(\.path))]))
                    var done: [String] = []
                    var failed: [String: String] = [:]
                    var emptied = Set<String>()
                    for r in batch {
                        let rel = r.path
                        guard Store.isSafeRelativePath(rel) else { done.append(rel); continue }
                        emptied.insert(PathBytes.parent(rel) ?? "")
                        if r.isDirectory {
                            Store.removeEmptyDirectories(root.path, rel)
                        } else {
                            if inUse.contains(rel) { done.append(rel); continue }
                            if PathAt.unlink(root.path, rel) != 0 && errno != ENOENT {
                                let why = String(cString: strerror(errno))
                                let shown = root.path + "/" + PathBytes.printable(rel)
                                if r.failure == why {
                                    logger.debug("still cannot remove \(shown): \(why)")
                                } else {
                                    logger.error("cannot remove \(shown): \(why); it stays in the removal journal and is retried at every open and gc")
                                    failed[rel] = why
                                }
                                continue
                            }
                        }
                        done.append(rel)
                    }
                    if done.isEmpty && failed.isEmpty { return }
                    // The removals must be on disk before their journal rows go: otherwise a power cut could bring
                    // back a file that nothing records any more. A directory already gone was removed with its
                    // parent's entry flushed here.
                    for d in emptied.sorted(by: { $0.utf8.count > $1.utf8.count }) {
                        do { try Durability.syncDirectory(root.path, d, missingOK: true) } catch { throw SyncFailed(error: error) }
                    }
                    try db.execute(sql: "DELETE FROM removals WHERE path IN (SELECT value FROM json_each(?))",
                                   arguments: [try Self.jsonArray(done)])
                    if !failed.isEmpty {
                        try db.execute(sql: """
                            UPDATE removals SET failure = (SELECT f.value FROM json_each(?1) f WHERE f.key = removals.path)
                            WHERE path IN (SELECT key FROM json_each(?1))
                            """, arguments: [try Self.jsonObject(failed)])
                    }
                }
            }
        } catch let e as SyncFailed {
            logger.error("\(e.error); removals stay journalled")
        } catch { logger.error("cannot update removal journal: \(error)") }
    }

    /// Paths drained per write transaction: about four seconds of unlinks and directory flushes on a busy disk.
    static let drainBatch = 50_000

    /// Removes `rel` (below `base`) and its subdirectories bottom-up where they are empty; never a file. Reached
    /// through directory descriptors, so a tree deeper than PATH_MAX goes too.
    static func removeEmptyDirectories(_ base: String, _ rel: String) {
        var dirs: [String] = []
        PathAt.walk(base, rel) { p, st, _, _ in if (st.st_mode & S_IFMT) == S_IFDIR { dirs.append(p) } }
        for d in dirs.reversed() { _ = PathAt.rmdir(base, d) }
        _ = PathAt.rmdir(base, rel)
    }

    /// A path relative to the store that cannot leave it: no leading `/`, no `..`, no empty component.
    public static func isSafeRelativePath(_ p: String) -> Bool {
        if p.isEmpty || p.hasPrefix("/") || p.contains("\0") { return false }
        for c in PathBytes.components(p, omittingEmpty: false) where c.isEmpty || c == "." || c == ".." { return false }
        return true
    }

    /// Drops a snapshot that its engine already removed (e.g. a checkpoint its own retention subsumed) from the catalog, touching
    /// no file: the engine owned the removal, and a file it kept may belong to something the catalog does not know yet.
    /// Objects no remaining snapshot references leave the catalog, so `verify` lists any leftover file as unreferenced.
    public func forget(_ name: String, reason: String) throws(StoreError) {
        try requireWritable("forget \(name)")
        do {
            try db.write { db in
                guard let s = try Snapshot.fetchOne(db, sql: "SELECT \(Snapshot.columns) FROM snapshots WHERE name = ?", arguments: [name]) else {
                    throw StoreError.noSuchSnapshot(name)
                }
                // A hold binds SnapFS, not the engine: say so when the engine removed a held snapshot.
                let hold = try holdRow(db, s.id).map { "; it was held: \($0.reason)" } ?? ""
                // The snapshot's objects as one JSON array, read before its entries go: one statement per set,
                // never one per object, so forgetting a large checkpoint costs what forgetting a small one does.
                let held = try String.fetchOne(db, sql: """
                    SELECT json_group_array(DISTINCT object_id) FROM entries WHERE snapshot_id = ? AND object_id IS NOT NULL
                    """, arguments: [s.id]) ?? "[]"
                try db.execute(sql: "DELETE FROM object_pins WHERE snapshot_id = ?", arguments: [s.id])
                try db.execute(sql: "DELETE FROM entries WHERE snapshot_id = ?", arguments: [s.id])
                try db.execute(sql: """
                    DELETE FROM objects WHERE id IN (SELECT value FROM json_each(?1)) AND (pending_snapshot IS NULL OR pending_snapshot = ?2)
                      AND NOT EXISTS (SELECT 1 FROM entries e WHERE e.object_id = objects.id)
                      AND NOT EXISTS (SELECT 1 FROM object_pins p WHERE p.object_id = objects.id)
                    """, arguments: [held, s.id])
                try db.execute(sql: "DELETE FROM objects WHERE pending_snapshot = ?", arguments: [s.id])
                try db.execute(sql: "DELETE FROM pins WHERE snapshot_id = ?", arguments: [s.id])
                try db.execute(sql: "DELETE FROM snapshots WHERE id = ?", arguments: [s.id])
                try insertEvent(db, "forget", name, "removed from the catalog (\(reason)); no file touched\(hold)")
                try db.bumpGeneration()
            }
        } catch let e as StoreError { throw e } catch { throw .wrap(error, "cannot forget \(name)") }
    }

    // MARK: move

    /// Renames a snapshot (SPEC §4 `mv S T`). Never replaces an existing snapshot.
    public func rename(_ name: String, to newName: String) throws(StoreError) {
        try requireWritable("move \(name)")
        do {
            try SnapshotName.validateLabel(newName)
        } catch {
            recordEvent("refusal", snapshot: name, "move to '\(SnapshotName.printable(newName))' refused: \(error)")
            throw error
        }
        if name == newName { _ = try snapshot(named: name); return }
        try hooks.refresh(self)
        let s = try snapshot(named: name)
        do {
            try hooks.checkMove(s, to: newName, in: self)
        } catch {
            recordEvent("refusal", snapshot: name, "move refused: \(error)")
            throw error
        }
        do {
            if let directory = try hooks.relocation(s, to: newName, in: self) {
                try renameWithDirectory(s, to: newName, directory: directory)
                return
            }
        } catch {
            recordEvent("refusal", snapshot: name, "move to '\(newName)' refused: \(error)")
            throw error
        }
        do {
            try db.write { db in
                guard let s = try Snapshot.fetchOne(db, sql: "SELECT \(Snapshot.columns) FROM snapshots WHERE name = ?", arguments: [name]) else {
                    throw StoreError.noSuchSnapshot(name)
                }
                if s.state != .complete { throw StoreError.busy(snapshot: name, reason: "still being written") }
                if let h = try holdRow(db, s.id) { throw StoreError.busy(snapshot: name, reason: h.refusal) }
                if try Bool.fetchOne(db, sql: "SELECT EXISTS(SELECT 1 FROM snapshots WHERE name = ?)", arguments: [newName]) == true {
                    throw StoreError.alreadyExists(newName)
                }
                try db.execute(sql: "UPDATE snapshots SET name = ? WHERE id = ?", arguments: [newName, s.id])
                try insertEvent(db, "move", newName, "renamed '\(name)' to '\(newName)'")
                try db.bumpGeneration()
            }
        } catch let e as StoreError {
            recordEvent("refusal", snapshot: name, "move to '\(newName)' refused: \(e)")
            throw e
        } catch { throw .wrap(error, "cannot rename \(name)") }
    }

    // MARK: pins

    /// Holds a snapshot against delete while `body` reads it (export, convert), across processes.
    public func withPin<T>(_ name: String, what: String, _ body: (Snapshot) throws -> T) throws -> T {
        // Nothing can delete from a store no one may write, and a reader could not record the pin anyway.
        if isReadOnly {
            let s = try snapshot(named: name)
            guard s.state == .complete else { throw StoreError.busy(snapshot: name, reason: "still being written") }
            return try body(s)
        }
        let s: Snapshot
        do {
            s = try db.write { db -> Snapshot in
                guard let s = try Snapshot.fetchOne(db, sql: "SELECT \(Snapshot.columns) FROM snapshots WHERE name = ?", arguments: [name]) else {
                    throw StoreError.noSuchSnapshot(name)
                }
                guard s.state == .complete else { throw StoreError.busy(snapshot: name, reason: "still being written") }
                try db.execute(sql: "INSERT INTO pins(snapshot_id, owner, what) VALUES (?, ?, ?)", arguments: [s.id, owner.token, what])
                return s
            }
        } catch let e as StoreError { throw e } catch { throw StoreError.wrap(error, "cannot pin \(name)") }
        defer {
            _ = try? db.write { db in
                try db.execute(sql: "DELETE FROM pins WHERE rowid = (SELECT rowid FROM pins WHERE snapshot_id = ? AND owner = ? AND what = ? LIMIT 1)",
                               arguments: [s.id, owner.token, what])
            }
        }
        return try body(s)
    }

    // MARK: retention

    /// Deletes system checkpoints beyond the newest `keep`, through the checked path. User snapshots are never touched.
    @discardableResult
    public func applyRetention(keep: Int) -> [DeleteSummary] {
        guard keep >= 1, let all = try? snapshots() else { return [] }
        let checkpoints = all.filter { $0.kind == .checkpoint }.sorted { ($0.completedAt ?? 0, $0.id) > ($1.completedAt ?? 0, $1.id) }
        var out: [DeleteSummary] = []
        for s in checkpoints.dropFirst(keep) {
            do { out.append(try delete(s.name, reason: "retention")) }
            catch { logger.info("retention skipped \(s.name): \(error)") }
        }
        return out
    }

    // MARK: recovery

    /// Finishes or rolls back what dead processes left: snapshots they were writing are rolled back, their pins and
    /// requests released, and every journalled removal done. Safe to call at any time from any process.
    public func recover() throws(StoreError) {
        do {
            let writing = try db.read { db in
                try Row.fetchAll(db, sql: "SELECT id, owner FROM snapshots WHERE state = 'writing'")
            }
            for r in writing {
                let who: String? = r["owner"]
                if let who, who == owner.token || OwnerLock.isAlive(who, in: runDir) { continue }
                try db.write { db in
                    guard let s = try Snapshot.fetchOne(db, sql: "SELECT \(Snapshot.columns) FROM snapshots WHERE id = ? AND state = 'writing'", arguments: [r["id"] as Int64]) else { return }
                    let sum = try removeSnapshotRows(db, s)
                    try insertEvent(db, "rollback", s.name, "snapshot interrupted while being written; rolled back (\(sum.removedObjects) objects removed)")
                    try db.bumpGeneration()
                }
                logger.notice("rolled back interrupted snapshot", metadata: ["id": .stringConvertible(r["id"] as Int64)])
            }
            // Object pins outlive their writer only if a commit or rollback was lost; rolling back a dead writer's
            // snapshot above released its own.
            let strayPins = try db.read { db in
                try SnapshotID.fetchAll(db, sql: """
                    SELECT DISTINCT snapshot_id FROM object_pins
                    WHERE snapshot_id NOT IN (SELECT id FROM snapshots WHERE state = 'writing')
                    """)
            }
            for id in strayPins {
                try db.write { db in
                    _ = try releaseObjectPins(db, id)
                    try db.bumpGeneration()
                }
            }
            let pinOwners = try db.read { try String.fetchAll($0, sql: "SELECT DISTINCT owner FROM pins") }
            for o in pinOwners where o != owner.token && !OwnerLock.isAlive(o, in: runDir) {
                try db.write { try $0.execute(sql: "DELETE FROM pins WHERE owner = ?", arguments: [o]) }
            }
            let reqOwners = try db.read { try String.fetchAll($0, sql: "SELECT DISTINCT owner FROM requests WHERE state IN ('pending','running') AND owner IS NOT NULL") }
            for o in reqOwners where o != owner.token && !OwnerLock.isAlive(o, in: runDir) {
                try db.write { db in
                    try db.execute(sql: """
                        UPDATE requests SET state = 'failed', error = 'the process serving this request stopped before it finished', finished_at = ?
                        WHERE owner = ? AND state IN ('pending','running')
                        """, arguments: [Date().timeIntervalSince1970, o])
                    try db.bumpGeneration()
                }
            }
            try recoverPendingMove()
        } catch let e as StoreError { throw e } catch { throw .wrap(error, "cannot recover store") }
        drainRemovals()
    }
}
