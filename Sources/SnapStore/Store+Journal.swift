import Foundation
import GRDB

/// One line of `.snapfs/events`: every trigger, delete, move, retention removal and refusal.
public struct StoreEvent: Codable, Sendable, Hashable {
    public var seq: Int64
    public var time: Double
    public var type: String
    public var snapshot: String?
    public var detail: String
}

/// One trigger request and what became of it (`.snapfs/requests/<seq>.json`).
public struct SnapshotRequest: Codable, Sendable, Hashable {
    public enum State: String, Codable, Sendable { case pending, running, complete, failed }
    public var seq: Int64
    public var format: String
    public var label: String?
    public var source: String
    public var state: State
    public var snapshot: String?
    public var error: String?
    public var requestedAt: Double
    public var startedAt: Double?
    public var finishedAt: Double?
}

extension Store {
    func insertEvent(_ db: Database, _ type: String, _ snapshot: String?, _ detail: String) throws {
        try db.execute(sql: "INSERT INTO events(time, type, snapshot, detail) VALUES (?, ?, ?, ?)",
                       arguments: [Date().timeIntervalSince1970, type, snapshot, detail])
    }

    /// Records an event on its own (a refusal, which changes nothing else) and logs it.
    public func recordEvent(_ type: String, snapshot: String?, _ detail: String) {
        if type == "refusal" {
            logger.warning("refused", metadata: ["snapshot": .string(snapshot ?? "-"), "reason": .string(detail)])
        } else {
            logger.info("\(type)", metadata: ["snapshot": .string(snapshot ?? "-"), "detail": .string(detail)])
        }
        if isReadOnly { return }
        do { try db.write { try insertEvent($0, type, snapshot, detail) } } catch {
            logger.error("cannot record event: \(error)")
        }
    }

    public func events(after seq: Int64 = 0, limit: Int = 100_000) throws(StoreError) -> [StoreEvent] {
        do {
            return try db.read { db in
                try Row.fetchAll(db, sql: "SELECT * FROM events WHERE seq > ? ORDER BY seq LIMIT ?", arguments: [seq, limit]).map {
                    StoreEvent(seq: $0["seq"], time: $0["time"], type: $0["type"], snapshot: $0["snapshot"], detail: $0["detail"])
                }
            }
        } catch { throw .wrap(error, "cannot read events") }
    }

    /// The last refusal recorded for a snapshot, shown in its `.snapfs/snapshots/S.json`.
    public func lastRefusal(of name: String) -> StoreEvent? {
        try? db.read { db in
            try Row.fetchOne(db, sql: "SELECT * FROM events WHERE type = 'refusal' AND snapshot = ? ORDER BY seq DESC LIMIT 1", arguments: [name]).map {
                StoreEvent(seq: $0["seq"], time: $0["time"], type: $0["type"], snapshot: $0["snapshot"], detail: $0["detail"])
            }
        }
    }

    // MARK: requests

    public func openRequest(format: String, label: String?, source: String) throws(StoreError) -> SnapshotRequest {
        try requireWritable("request a snapshot")
        do {
            return try db.write { db in
                try db.execute(sql: "INSERT INTO requests(format, label, source, state, owner, requested_at) VALUES (?, ?, ?, 'pending', ?, ?)",
                               arguments: [format, label, source, owner.token, Date().timeIntervalSince1970])
                let seq = db.lastInsertedRowID
                try insertEvent(db, "trigger", label, "request \(seq): format \(format) from \(source)")
                try db.bumpGeneration()
                return try fetchRequest(db, seq)!
            }
        } catch { throw .wrap(error, "cannot record request", storeRoot: root.path) }
    }

    public func updateRequest(_ seq: Int64, state: SnapshotRequest.State, snapshot: String? = nil, error: String? = nil) {
        let now = Date().timeIntervalSince1970
        do {
            try db.write { db in
                switch state {
                case .running:
                    try db.execute(sql: "UPDATE requests SET state = 'running', started_at = ? WHERE seq = ?", arguments: [now, seq])
                case .complete, .failed:
                    try db.execute(sql: "UPDATE requests SET state = ?, snapshot = ?, error = ?, finished_at = ? WHERE seq = ?",
                                   arguments: [state.rawValue, snapshot, error, now, seq])
                    if let error { try insertEvent(db, "trigger-failed", snapshot, "request \(seq): \(error)") }
                case .pending: break
                }
                try db.bumpGeneration()
            }
        } catch { logger.error("cannot update request \(seq): \(error)") }
    }

    public func requests() throws(StoreError) -> [SnapshotRequest] {
        do { return try db.read { db in try Row.fetchAll(db, sql: "SELECT * FROM requests ORDER BY seq").map(Self.request) } }
        catch { throw .wrap(error, "cannot read requests") }
    }

    public func request(_ seq: Int64) -> SnapshotRequest? {
        try? db.read { try fetchRequest($0, seq) }
    }

    private func fetchRequest(_ db: Database, _ seq: Int64) throws -> SnapshotRequest? {
        try Row.fetchOne(db, sql: "SELECT * FROM requests WHERE seq = ?", arguments: [seq]).map(Self.request)
    }

    private static func request(_ r: Row) -> SnapshotRequest {
        SnapshotRequest(seq: r["seq"], format: r["format"], label: r["label"], source: r["source"],
                        state: SnapshotRequest.State(rawValue: r["state"]) ?? .failed, snapshot: r["snapshot"],
                        error: r["error"], requestedAt: r["requested_at"], startedAt: r["started_at"], finishedAt: r["finished_at"])
    }
}
