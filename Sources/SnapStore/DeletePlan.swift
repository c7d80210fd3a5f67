import Foundation
import GRDB
#if canImport(Glibc)
import Glibc
#endif

/// What deleting some snapshots does, decided before anything is touched: which snapshots go, which are refused and
/// why, which files go with them, which files they share with snapshots that stay, and the bytes freed.
///
/// A delete computes its plan inside the transaction that carries it out, and a dry run computes it the same way
/// in a read transaction and stops there: the two run the same code over the same catalog, so a dry run cannot
/// promise something other than what the delete then does.
public struct DeletePlan: Codable, Sendable, Hashable {
    /// Whether this is only what a delete would do (nothing was changed) or what one did.
    public var dryRun: Bool
    /// Snapshots that go, in the order asked for.
    public var snapshots: [String]
    /// Snapshots that stay although asked for, each with why (held, recovery point, being written, in use).
    public var refused: [Refusal]
    /// Names asked for that no snapshot has.
    public var missing: [String]
    /// Files (store-relative) that only the snapshots going reference: removed.
    public var removedFiles: [PlannedFile]
    /// Files the snapshots going share with snapshots that stay: kept, with who keeps them.
    public var keptShared: [SharedFile]
    /// Directories of the snapshots going (a canonical tree, a Flink `chk-N`), removed once empty.
    public var directories: [String]
    /// What the removed files occupy on disk now (their lengths; a file already missing frees nothing).
    public var bytesFreed: Int64
    /// The removed files' lengths as the catalog recorded them.
    public var catalogBytes: Int64

    public struct Refusal: Codable, Sendable, Hashable {
        public var snapshot: String
        public var reason: String

        public init(snapshot: String, reason: String) { self.snapshot = snapshot; self.reason = reason }
    }

    public struct PlannedFile: Codable, Sendable, Hashable {
        public var path: String
        public var size: Int64
        /// The file's length on disk when planned; nil when it is missing.
        public var bytesOnDisk: Int64?
    }

    public struct SharedFile: Codable, Sendable, Hashable {
        public var path: String
        public var size: Int64
        /// The snapshots that stay and reference the file; "(a snapshot being written)" for one still being taken.
        public var keptFor: [String]
    }

    static func empty(dryRun: Bool) -> DeletePlan {
        DeletePlan(dryRun: dryRun, snapshots: [], refused: [], missing: [], removedFiles: [], keptShared: [],
                   directories: [], bytesFreed: 0, catalogBytes: 0)
    }

    /// Whether the plan changes anything at all.
    public var isEmpty: Bool { snapshots.isEmpty }

    /// The plan as one snapshot's delete summary.
    func summary(of name: String) -> DeleteSummary {
        DeleteSummary(snapshot: name, removedObjects: removedFiles.count, removedBytes: catalogBytes, keptShared: keptShared.count)
    }
}

extension Store {
    /// Plans deleting `names` inside transaction `db`. The snapshots' own rule checks (`refusalReason`) decide which
    /// may go; the objects that go are those referenced, being written or pinned for reuse by the snapshots going and
    /// by nothing else (no entry of a snapshot that stays, no pin of a snapshot being written).
    func planDelete(_ db: Database, names: [String], job: JobStatus, dryRun: Bool) throws -> (DeletePlan, [Snapshot]) {
        var plan = DeletePlan.empty(dryRun: dryRun)
        var targets: [Snapshot] = []
        var seen = Set<String>()
        for name in names where seen.insert(name).inserted {
            guard let s = try Snapshot.fetchOne(db, sql: "SELECT \(Snapshot.columns) FROM snapshots WHERE name = ?", arguments: [name]) else {
                plan.missing.append(name)
                continue
            }
            if let why = try refusalReason(s, db, job: job) {
                plan.refused.append(.init(snapshot: name, reason: why))
            } else {
                targets.append(s)
                plan.snapshots.append(name)
            }
        }
        try planFiles(db, &plan, targets)
        return (plan, targets)
    }

    /// Fills in a plan's files for `targets`, whatever the rules say of them: a rollback of a snapshot being written
    /// uses this too.
    func planFiles(_ db: Database, _ plan: inout DeletePlan, _ targets: [Snapshot]) throws {
        if targets.isEmpty { return }
        plan.directories = targets.compactMap(\.directory)
        let ids = targets.map { String($0.id) }.joined(separator: ",")
        let rows = try Row.fetchAll(db, sql: """
            SELECT o.id, o.path, o.size,
                   (SELECT COUNT(*) FROM entries e2 WHERE e2.object_id = o.id AND e2.snapshot_id NOT IN (\(ids)))
                 + (SELECT COUNT(*) FROM object_pins p2 WHERE p2.object_id = o.id AND p2.snapshot_id NOT IN (\(ids))) AS others
            FROM objects o
            WHERE o.id IN (SELECT object_id FROM entries WHERE snapshot_id IN (\(ids)) AND object_id IS NOT NULL)
               OR o.pending_snapshot IN (\(ids))
               OR o.id IN (SELECT object_id FROM object_pins WHERE snapshot_id IN (\(ids)) AND kind = 'reuse')
            ORDER BY o.path
            """)
        var shared: [ObjectID: Int] = [:]
        for r in rows {
            let path: String = r["path"], size: Int64 = r["size"]
            if (r["others"] as Int) > 0 {
                shared[r["id"]] = plan.keptShared.count
                plan.keptShared.append(.init(path: path, size: size, keptFor: []))
            } else {
                var st = stat()
                let onDisk: Int64? = PathAt.lstat(root.path, path, &st) == 0 ? Int64(st.st_size) : nil
                plan.removedFiles.append(.init(path: path, size: size, bytesOnDisk: onDisk))
                plan.catalogBytes += size
                plan.bytesFreed += onDisk ?? 0
            }
        }
        if !shared.isEmpty {
            let keepers = try Row.fetchAll(db, sql: """
                SELECT DISTINCT e.object_id, s.name, s.state FROM entries e JOIN snapshots s ON s.id = e.snapshot_id
                WHERE e.snapshot_id NOT IN (\(ids)) AND e.object_id IN (\(shared.keys.map(String.init).joined(separator: ",")))
                UNION
                SELECT DISTINCT p.object_id, NULL, 'writing' FROM object_pins p
                WHERE p.snapshot_id NOT IN (\(ids)) AND p.object_id IN (\(shared.keys.map(String.init).joined(separator: ",")))
                """)
            for k in keepers {
                guard let i = shared[k["object_id"]] else { continue }
                let who = (k["name"] as String?).map { ($0, k["state"] as String) }.map { $0.1 == "writing" ? "\($0.0) (being written)" : $0.0 }
                    ?? "(a snapshot being written)"
                if !plan.keptShared[i].keptFor.contains(who) { plan.keptShared[i].keptFor.append(who) }
            }
            for i in plan.keptShared.indices { plan.keptShared[i].keptFor.sort() }
        }
    }

    /// Carries out a plan made by `planDelete` in the same transaction: the snapshots' rows go, the files only they
    /// referenced go to the removal journal (the files themselves follow in `drainRemovals`), shared ones stay.
    func executeDelete(_ db: Database, _ plan: DeletePlan, _ targets: [Snapshot]) throws {
        let ids = targets.map { String($0.id) }.joined(separator: ",")
        guard !ids.isEmpty else { return }
        let now = Date().timeIntervalSince1970
        try db.execute(sql: "DELETE FROM object_pins WHERE snapshot_id IN (\(ids))")
        try db.execute(sql: "DELETE FROM entries WHERE snapshot_id IN (\(ids))")
        // An object a snapshot going was writing but that another snapshot now references becomes an ordinary one.
        try db.execute(sql: "UPDATE objects SET pending_snapshot = NULL WHERE pending_snapshot IN (\(ids))")
        // The plan's own paths, passed as one JSON array: a statement per set, never one per object, so a snapshot
        // of a million objects costs the catalog as many statements as one of ten.
        let files = try Self.jsonArray(plan.removedFiles.map(\.path))
        try db.execute(sql: "DELETE FROM objects WHERE path IN (SELECT value FROM json_each(?))", arguments: [files])
        try db.execute(sql: "INSERT OR REPLACE INTO removals(path, is_directory, queued_at) SELECT value, 0, ? FROM json_each(?)",
                       arguments: [now, files])
        try db.execute(sql: "INSERT OR REPLACE INTO removals(path, is_directory, queued_at) SELECT value, 1, ? FROM json_each(?)",
                       arguments: [now, try Self.jsonArray(plan.directories)])
        try db.execute(sql: "DELETE FROM pins WHERE snapshot_id IN (\(ids))")
        try db.execute(sql: "DELETE FROM snapshots WHERE id IN (\(ids))")
    }

    /// Strings as one JSON array, for a statement that takes a whole set through `json_each`.
    static func jsonArray(_ strings: [String]) throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = .withoutEscapingSlashes
        return String(decoding: try encoder.encode(strings), as: UTF8.self)
    }

    /// Strings keyed by strings as one JSON object, for a statement that takes a whole map through `json_each`.
    static func jsonObject(_ map: [String: String]) throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = .withoutEscapingSlashes
        return String(decoding: try encoder.encode(map), as: UTF8.self)
    }
}
