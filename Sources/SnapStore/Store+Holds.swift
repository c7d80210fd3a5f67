import Foundation
import GRDB

/// A person's word that a snapshot must stay, with why: until it is released, delete, move and retention (scheduled
/// or `prune`) refuse the snapshot, as `zfs destroy` refuses a held snapshot. A hold binds SnapFS only: an engine
/// that removes its own snapshots (Flink subsuming a checkpoint) does not ask.
public struct Hold: Codable, Sendable, Hashable {
    public var reason: String
    /// Seconds since 1970.
    public var since: Double

    public init(reason: String, since: Double) { self.reason = reason; self.since = since }

    /// How a hold reads in a refusal: "held: REASON".
    public var refusal: String { "held: \(reason)" }

    /// The longest reason accepted, in bytes: a reason is a note, shown in every listing.
    public static let maxReasonBytes = 1024

    /// Checks a reason as a user typed it. A single trailing newline (as `echo` or a here-string add) is dropped.
    public static func validatedReason(_ raw: String) throws(StoreError) -> String {
        var r = raw
        if r.hasSuffix("\n") { r.removeLast() }
        if r.trimmingCharacters(in: .whitespaces).isEmpty {
            throw .badInput("a hold needs a reason (e.g. --reason 'incident 42: keep for the post-mortem')")
        }
        if r.utf8.count > maxReasonBytes {
            throw .badInput("a hold's reason may be at most \(maxReasonBytes) bytes; this one has \(r.utf8.count)")
        }
        if r.unicodeScalars.contains(where: { $0.properties.generalCategory == .control }) {
            throw .badInput("a hold's reason must be one line of printable text (no tabs, newlines or other control characters)")
        }
        return r
    }
}

extension Store {
    /// Puts a hold on a complete snapshot, or changes the reason of the hold it has. Returns the hold it replaced.
    @discardableResult
    public func hold(_ name: String, reason rawReason: String) throws(StoreError) -> Hold? {
        try requireWritable("hold \(name)")
        let reason = try Hold.validatedReason(rawReason)
        do {
            return try db.write { db -> Hold? in
                guard let s = try Snapshot.fetchOne(db, sql: "SELECT \(Snapshot.columns) FROM snapshots WHERE name = ?", arguments: [name]) else {
                    throw StoreError.noSuchSnapshot(name)
                }
                guard s.state == .complete else { throw StoreError.busy(snapshot: name, reason: "still being written; hold it once it is complete") }
                let old = try holdRow(db, s.id)
                try db.execute(sql: "INSERT OR REPLACE INTO holds(snapshot_id, reason, held_at) VALUES (?, ?, ?)",
                               arguments: [s.id, reason, old?.since ?? Date().timeIntervalSince1970])
                try insertEvent(db, "hold", name, old.map { "hold reason changed from '\($0.reason)' to '\(reason)'" } ?? "held: \(reason)")
                try db.bumpGeneration()
                return old
            }
        } catch let e as StoreError { throw e } catch { throw .wrap(error, "cannot hold \(name)") }
    }

    /// Releases a snapshot's hold. Returns the hold released, or nil if the snapshot was not held (nothing changes).
    @discardableResult
    public func release(_ name: String) throws(StoreError) -> Hold? {
        try requireWritable("release \(name)")
        do {
            return try db.write { db -> Hold? in
                guard let id = try SnapshotID.fetchOne(db, sql: "SELECT id FROM snapshots WHERE name = ?", arguments: [name]) else {
                    throw StoreError.noSuchSnapshot(name)
                }
                guard let old = try holdRow(db, id) else { return nil }
                try db.execute(sql: "DELETE FROM holds WHERE snapshot_id = ?", arguments: [id])
                try insertEvent(db, "release", name, "hold released (it was: \(old.reason))")
                try db.bumpGeneration()
                return old
            }
        } catch let e as StoreError { throw e } catch { throw .wrap(error, "cannot release \(name)") }
    }

    /// The hold on a snapshot, or nil.
    public func hold(of name: String) throws(StoreError) -> Hold? {
        do {
            return try db.read { db in
                guard let id = try SnapshotID.fetchOne(db, sql: "SELECT id FROM snapshots WHERE name = ?", arguments: [name]) else {
                    throw StoreError.noSuchSnapshot(name)
                }
                return try holdRow(db, id)
            }
        } catch let e as StoreError { throw e } catch { throw .wrap(error, "cannot read catalog") }
    }

    /// How many snapshots are held.
    public func holdCount() throws(StoreError) -> Int {
        do { return try db.read { try Int.fetchOne($0, sql: "SELECT COUNT(*) FROM holds") ?? 0 } }
        catch { throw .wrap(error, "cannot read catalog") }
    }

    func holdRow(_ db: Database, _ id: SnapshotID) throws -> Hold? {
        try Row.fetchOne(db, sql: "SELECT reason, held_at FROM holds WHERE snapshot_id = ?", arguments: [id])
            .map { Hold(reason: $0["reason"], since: $0["held_at"]) }
    }

    /// Every hold, by snapshot id.
    func holdRows(_ db: Database) throws -> [SnapshotID: Hold] {
        var out: [SnapshotID: Hold] = [:]
        for r in try Row.fetchAll(db, sql: "SELECT snapshot_id, reason, held_at FROM holds") {
            out[r["snapshot_id"]] = Hold(reason: r["reason"], since: r["held_at"])
        }
        return out
    }
}
