import Foundation
import GRDB

/// Everything a user asks about one snapshot (`snapfs show`, `.snapfs/snapshots/S.json`).
public struct SnapshotReport: Codable, Sendable {
    public var id: SnapshotID
    public var name: String
    public var kind: SnapshotKind
    public var format: SnapshotFormat
    public var state: SnapshotState
    public var engine: String
    public var job: String?
    public var createdAt: Double
    public var completedAt: Double?
    public var externalID: String?
    /// Where the snapshot's own directory is in the store (a canonical tree, a Flink `chk-N` or savepoint), if it has one.
    public var directory: String?
    /// Files in the snapshot's logical tree and their total size.
    public var files: Int
    public var size: Int64
    /// Stored objects it references; how many only it references, and their bytes (what a delete frees).
    public var objects: Int
    public var exclusiveObjects: Int
    public var exclusiveBytes: Int64
    /// Older snapshots whose stored files this one uses, and newer ones that use files this one holds.
    public var references: [String]
    public var referencedBy: [String]
    public var recoveryPoint: Bool
    /// Set when this is the newest snapshot of its job (the last one that job can be restored from): the job and
    /// its state, e.g. `CANCELED` once the cluster says so and the snapshot is no longer protected.
    public var lastRestorableOf: JobRecovery?
    /// Whether a hold keeps it (see `Hold`), and the hold.
    public var held: Bool
    public var hold: Hold?
    public var deletable: Bool
    /// Why a delete would be refused now.
    public var notDeletableBecause: String?
    /// The last refusal of an operation on it, as written to `.snapfs/events`.
    public var lastRefusal: String?
    /// What was in the state but is not in the snapshot (sockets), each with why.
    public var notHeld: [Omission]
}

extension Store {
    public func report(_ name: String) throws(StoreError) -> SnapshotReport {
        let s = try snapshot(named: name)
        let job = jobStatus()
        let times = hooks.reportedTimes(job: s.job, externalID: s.externalID)
        let refusal = lastRefusal(of: s.name)?.detail
        let omitted = try omissions(of: s.id)
        do {
            return try db.read { db in
                let counts = try Row.fetchOne(db, sql: """
                    SELECT COUNT(*) AS files, COALESCE(SUM(size), 0) AS bytes FROM entries WHERE snapshot_id = ? AND hidden = 0 AND type = 'file'
                    """, arguments: [s.id])!
                let objs = try Row.fetchOne(db, sql: """
                    SELECT COUNT(*) AS n,
                           COALESCE(SUM(CASE WHEN others = 0 THEN 1 ELSE 0 END), 0) AS excl,
                           COALESCE(SUM(CASE WHEN others = 0 THEN size ELSE 0 END), 0) AS exclBytes
                    FROM (SELECT o.id, o.size,
                                 (SELECT COUNT(*) FROM entries e2 WHERE e2.object_id = o.id AND e2.snapshot_id <> ?) AS others
                          FROM objects o WHERE o.id IN (SELECT object_id FROM entries WHERE snapshot_id = ? AND object_id IS NOT NULL))
                    """, arguments: [s.id, s.id])!
                let sharers = try Row.fetchAll(db, sql: """
                    SELECT DISTINCT s2.id, s2.name FROM entries e
                    JOIN entries e2 ON e2.object_id = e.object_id AND e2.snapshot_id <> e.snapshot_id
                    JOIN snapshots s2 ON s2.id = e2.snapshot_id
                    WHERE e.snapshot_id = ? AND e.object_id IS NOT NULL ORDER BY s2.id
                    """, arguments: [s.id])
                let why = try refusalReason(s, db, job: job)
                let hold = try holdRow(db, s.id)
                return SnapshotReport(
                    id: s.id, name: s.name, kind: s.kind, format: s.format, state: s.state, engine: s.engine, job: s.job,
                    createdAt: times?.created ?? s.createdAt, completedAt: times.map { $0.completed } ?? s.completedAt, externalID: s.externalID, directory: s.directory,
                    files: counts["files"], size: counts["bytes"],
                    objects: objs["n"], exclusiveObjects: objs["excl"], exclusiveBytes: objs["exclBytes"],
                    references: sharers.filter { ($0["id"] as Int64) < s.id }.map { $0["name"] },
                    referencedBy: sharers.filter { ($0["id"] as Int64) > s.id }.map { $0["name"] },
                    recoveryPoint: job.protects(s.name),
                    lastRestorableOf: job.jobs.first { $0.newest == s.name },
                    held: hold != nil, hold: hold,
                    deletable: why == nil, notDeletableBecause: why,
                    lastRefusal: refusal, notHeld: omitted)
            }
        } catch { throw .wrap(error, "cannot read catalog") }
    }
}

/// One row of `snapfs list`.
public struct SnapshotSummary: Codable, Sendable {
    public var id: SnapshotID
    public var name: String
    public var kind: SnapshotKind
    public var format: SnapshotFormat
    public var state: SnapshotState
    public var createdAt: Double
    public var completedAt: Double?
    public var files: Int
    public var size: Int64
    public var recoveryPoint: Bool
    public var held: Bool
    public var hold: Hold?
}

extension Store {
    /// Every snapshot with its file count and size, in one query.
    public func summaries(includingWriting: Bool = false) throws(StoreError) -> [SnapshotSummary] {
        let job = jobStatus()
        let hooks = self.hooks
        do {
            return try db.read { db in
                let holds = try holdRows(db)
                return try Row.fetchAll(db, sql: """
                    SELECT s.id, s.name, s.kind, s.format, s.state, s.created_at, s.completed_at, s.job, s.external_id,
                           COUNT(e.path) AS files, COALESCE(SUM(e.size), 0) AS bytes
                    FROM snapshots s LEFT JOIN entries e ON e.snapshot_id = s.id AND e.type = 'file' AND e.hidden = 0
                    \(includingWriting ? "" : "WHERE s.state = 'complete'")
                    GROUP BY s.id ORDER BY s.id
                    """).map { r in
                    let times = hooks.reportedTimes(job: r["job"], externalID: r["external_id"])
                    return SnapshotSummary(id: r["id"], name: r["name"], kind: SnapshotKind(rawValue: r["kind"]) ?? .user,
                                    format: SnapshotFormat(rawValue: r["format"]) ?? .nativeFull,
                                    state: SnapshotState(rawValue: r["state"]) ?? .writing,
                                    createdAt: times?.created ?? r["created_at"], completedAt: times.map { $0.completed } ?? r["completed_at"], files: r["files"], size: r["bytes"],
                                    recoveryPoint: job.protects(r["name"]),
                                    held: holds[r["id"]] != nil, hold: holds[r["id"]])
                }
            }
        } catch { throw .wrap(error, "cannot read catalog") }
    }
}
