import Foundation
import GRDB

/// An entry as an engine hands it to the store when committing a snapshot.
public struct NewEntry: Sendable {
    public var path: String
    public var type: EntryType
    public var size: Int64
    public var mode: UInt32
    public var mtimeNanos: Int64
    public var object: ObjectID?
    public var symlinkTarget: String?
    public var hidden: Bool
    public var rdev: UInt64?
    /// See `SnapshotEntry.sizeRule`; `requiredSize` nil means `size`.
    public var sizeRule: SizeRule
    public var requiredSize: Int64?
    /// See `SnapshotEntry.uid`, `gid` and `xattrs`.
    public var uid: UInt32?
    public var gid: UInt32?
    public var xattrs: ExtendedAttributes?

    public init(path: String, type: EntryType, size: Int64, mode: UInt32, mtimeNanos: Int64,
                object: ObjectID? = nil, symlinkTarget: String? = nil, hidden: Bool = false, rdev: UInt64? = nil,
                sizeRule: SizeRule = .exact, requiredSize: Int64? = nil, uid: UInt32? = nil, gid: UInt32? = nil,
                xattrs: ExtendedAttributes? = nil) {
        self.path = path; self.type = type; self.size = size; self.mode = mode; self.mtimeNanos = mtimeNanos
        self.object = object; self.symlinkTarget = symlinkTarget; self.hidden = hidden; self.rdev = rdev
        self.sizeRule = sizeRule; self.requiredSize = requiredSize
        self.uid = uid; self.gid = gid; self.xattrs = xattrs
    }
}

/// A snapshot being written. Its row exists (state `writing`, owned by this process) before any byte is written, and
/// every object is recorded before its bytes exist, so a crash at any instant leaves only work that `recover`
/// rolls back. Not shared across threads.
public final class PendingSnapshot {
    public let store: Store
    public private(set) var snapshot: Snapshot
    private var finished = false
    /// Paths of objects this writer created (not adopted ones), so a rollback can free their space first.
    private var reservedPaths: [String] = []

    init(store: Store, snapshot: Snapshot) {
        self.store = store
        self.snapshot = snapshot
    }

    deinit {
        if !finished { abort("writer went away without committing") }
    }

    /// Records new objects at the given store-relative paths before their bytes are written.
    public func reserveObjects(_ paths: [(path: String, size: Int64)]) throws(StoreError) -> [ObjectID] {
        for p in paths where !Store.isSafeRelativePath(p.path) { throw .badInput("object path '\(p.path)' would leave the store") }
        do {
            let ids = try store.db.write { db in
                let now = Date().timeIntervalSince1970
                var ids: [ObjectID] = []
                ids.reserveCapacity(paths.count)
                let stmt = try db.makeStatement(sql: "INSERT INTO objects(path, size, pending_snapshot, created_at) VALUES (?, ?, ?, ?)")
                for p in paths {
                    try stmt.execute(arguments: [p.path, p.size, snapshot.id, now])
                    ids.append(db.lastInsertedRowID)
                }
                return ids
            }
            reservedPaths.append(contentsOf: paths.map(\.path))
            return ids
        } catch let e as DatabaseError where e.resultCode == .SQLITE_CONSTRAINT {
            throw .corrupt("an object path is already in the catalog: \(e.message ?? "")")
        } catch { throw .wrap(error, "cannot record objects") }
    }

    /// Decides which of `base`'s stored files this snapshot reuses instead of copying, and pins them in the same
    /// transaction: a delete of the base that commits while this snapshot copies the rest leaves them in place, so
    /// the commit never references an object that is gone. `matches(path, size, mtimeNanos)` says whether the
    /// source's file at `path` is still the one the base recorded. A base deleted before this call shares nothing.
    public func reuseObjects(from base: SnapshotID,
                             where matches: (_ path: String, _ size: Int64, _ mtimeNanos: Int64) -> Bool) throws(StoreError) -> [String: ObjectID] {
        do {
            return try store.db.write { db in
                let rows = try Row.fetchCursor(db, sql: """
                    SELECT e.path, e.size, e.mtime_ns, e.object_id
                    FROM entries e JOIN objects o ON o.id = e.object_id JOIN snapshots s ON s.id = e.snapshot_id
                    WHERE e.snapshot_id = ? AND e.type = 'file' AND e.hidden = 0 AND s.state = 'complete'
                      AND (o.sha256 IS NOT NULL OR o.sparse_digest IS NOT NULL)
                    """, arguments: [base])
                var chosen: [String: ObjectID] = [:]
                while let r = try rows.next() {
                    let path: String = r[0]
                    if matches(path, r[1], r[2]) { chosen[path] = r[3] }
                }
                let pin = try db.makeStatement(sql: "INSERT OR IGNORE INTO object_pins(snapshot_id, object_id, kind) VALUES (?, ?, 'reuse')")
                for id in Set(chosen.values) { try pin.execute(arguments: [snapshot.id, id]) }
                return chosen
            }
        } catch { throw .wrap(error, "cannot pin the objects of the base snapshot") }
    }

    /// Records files that already exist in the store (a Flink engine's files) as objects, or finds the ones already
    /// recorded, and pins them until the commit, so a concurrent delete of the snapshots that held them keeps them.
    public func adoptObjects(_ files: [(path: String, size: Int64)]) throws(StoreError) -> [ObjectID] {
        for p in files where !Store.isSafeRelativePath(p.path) { throw .badInput("object path '\(p.path)' would leave the store") }
        do {
            return try store.db.write { db in
                let now = Date().timeIntervalSince1970
                var ids: [ObjectID] = []
                let pin = try db.makeStatement(sql: "INSERT OR IGNORE INTO object_pins(snapshot_id, object_id, kind) VALUES (?, ?, 'adopt')")
                for f in files {
                    if let id = try ObjectID.fetchOne(db, sql: "SELECT id FROM objects WHERE path = ?", arguments: [f.path]) {
                        ids.append(id)
                    } else {
                        // Not marked pending: these files are someone else's, so rolling this snapshot back (here or
                        // in `recover` after a crash) must never queue them for removal. An unused row is harmless.
                        try db.execute(sql: "INSERT INTO objects(path, size, pending_snapshot, created_at) VALUES (?, ?, NULL, ?)",
                                       arguments: [f.path, f.size, now])
                        ids.append(db.lastInsertedRowID)
                    }
                    try pin.execute(arguments: [snapshot.id, ids[ids.count - 1]])
                }
                return ids
            }
        } catch { throw .wrap(error, "cannot record objects") }
    }

    /// Makes the snapshot complete and listed, with its entries, in one transaction.
    /// `checksums` gives the final size and SHA-256 of objects this snapshot wrote; `sparseDigests` the final size and
    /// `SparseDigest` of those it wrote with holes (with or without a SHA-256 as well). `takenAt` is for engines that
    /// record snapshots someone else wrote earlier: when it was really taken, so listings show that, not the import.
    /// `adoptedDirectory` is a directory the snapshot owns from now on but that this writer did not create (a Flink
    /// `chk-N`): recorded only here, so that a rollback before the commit can never remove it.
    public func commit(entries: [NewEntry], checksums: [ObjectID: (size: Int64, sha256: String)], takenAt: Double? = nil,
                       adoptedDirectory: String? = nil, omitted: [Omission] = [], blocks: [ObjectID: Int64] = [:],
                       sparseDigests: [ObjectID: (size: Int64, digest: String)] = [:]) throws(StoreError) -> Snapshot {
        if let d = adoptedDirectory, !Store.isSafeRelativePath(d) { throw .badInput("snapshot directory '\(d)' would leave the store") }
        var seen = Set<String>()
        for e in entries {
            guard Store.isSafeRelativePath(e.path) else { throw .badInput("entry path '\(e.path)' is not a relative path inside the snapshot") }
            guard seen.insert(e.path).inserted else { throw .badInput("entry path '\(e.path)' appears twice") }
        }
        let now = Date().timeIntervalSince1970
        var released = 0
        do {
            snapshot = try store.db.write { db in
                let upd = try db.makeStatement(sql: "UPDATE objects SET size = ?, sha256 = ? WHERE id = ?")
                for (id, c) in checksums { try upd.execute(arguments: [c.size, c.sha256, id]) }
                let sparse = try db.makeStatement(sql: "UPDATE objects SET size = ?, sparse_digest = ? WHERE id = ?")
                for (id, c) in sparseDigests { try sparse.execute(arguments: [c.size, c.digest, id]) }
                // What each object this snapshot wrote occupies on disk (`st_blocks`): less than its length when sparse.
                let alloc = try db.makeStatement(sql: "UPDATE objects SET blocks = ? WHERE id = ?")
                for (id, b) in blocks { try alloc.execute(arguments: [b, id]) }
                let ins = try db.makeStatement(sql: """
                    INSERT INTO entries(snapshot_id, path, type, size, mode, mtime_ns, object_id, symlink_target, hidden, rdev,
                                        size_rule, required_size, uid, gid, xattrs)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                    """)
                for e in entries {
                    let required = e.requiredSize == e.size ? nil : e.requiredSize
                    try ins.execute(arguments: [snapshot.id, e.path, e.type.rawValue, e.size, Int64(e.mode), e.mtimeNanos,
                                                e.object, e.symlinkTarget, e.hidden ? 1 : 0, e.rdev.map { Int64(bitPattern: $0) },
                                                e.sizeRule.rawValue, required, e.uid.map { Int64($0) }, e.gid.map { Int64($0) },
                                                e.xattrs.flatMap { $0.isEmpty ? nil : $0.blob }])
                }
                try db.execute(sql: "UPDATE objects SET pending_snapshot = NULL WHERE pending_snapshot = ?", arguments: [snapshot.id])
                released = try store.releaseObjectPins(db, snapshot.id)
                if let d = adoptedDirectory {
                    try db.execute(sql: "UPDATE snapshots SET directory = ? WHERE id = ?", arguments: [d, snapshot.id])
                }
                try db.execute(sql: "UPDATE snapshots SET state = 'complete', completed_at = ?, created_at = COALESCE(?, created_at), owner = NULL WHERE id = ?",
                               arguments: [takenAt ?? now, takenAt, snapshot.id])
                try store.insertOmissions(db, snapshot.id, omitted)
                try store.insertEvent(db, "snapshot", snapshot.name, "\(snapshot.kind.rawValue) snapshot complete: format \(snapshot.format.rawValue), \(entries.count) entries, \(Set(checksums.keys).union(sparseDigests.keys).count) objects written"
                                      + Omission.summary(omitted))
                try db.bumpGeneration()
                return try Snapshot.fetchOne(db, sql: "SELECT \(Snapshot.columns) FROM snapshots WHERE id = ?", arguments: [snapshot.id])!
            }
        } catch { throw .wrap(error, "cannot commit snapshot \(snapshot.name)") }
        finished = true
        if released > 0 { store.drainRemovals() }
        return snapshot
    }

    /// Rolls the snapshot back: its row, its entries and every object only it wrote.
    public func abort(_ why: String) {
        guard !finished else { return }
        finished = true
        // Free the space of what this writer wrote before touching the catalog: when the disk is full, SQLite can
        // record the rollback only once that space is back. The removal journal below makes this idempotent.
        for p in reservedPaths { _ = PathAt.unlink(store.root.path, p) }
        do {
            try store.db.write { db in
                let sum = try store.removeSnapshotRows(db, snapshot)
                try store.insertEvent(db, "snapshot-failed", snapshot.name, "\(why); rolled back (\(sum.removedObjects) objects removed)")
                try db.bumpGeneration()
            }
        } catch { store.logger.error("cannot roll back snapshot \(snapshot.name): \(error); the next open will") }
        store.drainRemovals()
    }
}

extension Store {
    /// Starts a snapshot. Without a label, a checkpoint is named `chk-<id>` and a user snapshot `sp-<id>`.
    public func beginSnapshot(label: String?, kind: SnapshotKind, format: SnapshotFormat, job: String? = nil,
                              engine: String? = nil, externalID: String? = nil,
                              root: RootOwnership? = nil, directory: ((SnapshotID) -> String)? = nil) throws(StoreError) -> PendingSnapshot {
        if let label { try SnapshotName.validateLabel(label) }
        try requireWritable("take a snapshot")
        let engine = engine ?? engineName
        do {
            let s = try db.write { db -> Snapshot in
                if let label, try Bool.fetchOne(db, sql: "SELECT EXISTS(SELECT 1 FROM snapshots WHERE name = ?)", arguments: [label]) == true {
                    throw StoreError.alreadyExists(label)
                }
                let temp = "writing-\(UUID().uuidString)"
                try db.execute(sql: """
                    INSERT INTO snapshots(name, kind, format, state, engine, job, created_at, external_id, owner)
                    VALUES (?, ?, ?, 'writing', ?, ?, ?, ?, ?)
                    """, arguments: [temp, kind.rawValue, format.rawValue, engine, job, Date().timeIntervalSince1970, externalID, owner.token])
                let id = db.lastInsertedRowID
                var name = label ?? (kind == .checkpoint ? "chk-\(id)" : "sp-\(id)")
                if label == nil, try Bool.fetchOne(db, sql: "SELECT EXISTS(SELECT 1 FROM snapshots WHERE name = ?)", arguments: [name]) == true {
                    name += "-\(UInt32.random(in: 0...UInt32.max))"
                }
                let dir = directory?(id)
                if let dir, !Store.isSafeRelativePath(dir) { throw StoreError.badInput("snapshot directory '\(dir)' would leave the store") }
                try db.execute(sql: """
                    UPDATE snapshots SET name = ?, directory = ?, root_mode = ?, root_uid = ?, root_gid = ?, root_mtime_ns = ?, root_xattrs = ?
                    WHERE id = ?
                    """, arguments: [name, dir, root.map { Int64($0.mode) }, root.map { Int64($0.uid) }, root.map { Int64($0.gid) },
                                    root?.mtimeNanos, root?.xattrs.flatMap { $0.isEmpty ? nil : $0.blob }, id])
                try db.bumpGeneration()
                return try Snapshot.fetchOne(db, sql: "SELECT \(Snapshot.columns) FROM snapshots WHERE id = ?", arguments: [id])!
            }
            return PendingSnapshot(store: self, snapshot: s)
        } catch let e as StoreError { throw e } catch { throw .wrap(error, "cannot start snapshot") }
    }
}
