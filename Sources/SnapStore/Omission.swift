import Foundation
import GRDB
#if canImport(Glibc)
import Glibc
#endif

/// Something in the state that a snapshot does not hold, and why. A socket is a live endpoint of a running
/// process, and no format (nor `tar` or `restic`) can bring one back. (FIFOs and device nodes are held, as entries.)
/// Each is recorded with the snapshot, shown by `snapfs show` and in its `.snapfs/snapshots/S.json`, and counted in
/// the snapshot's event, so nothing is ever silently absent from a snapshot.
public struct Omission: Codable, Sendable, Hashable {
    /// The path as the store writes names (see `PathBytes`); `pathBase64` gives its exact bytes when they are not
    /// the UTF-8 of `path`.
    public var path: String
    public var pathBase64: String?
    /// What it is: "socket" (or, for a type this code does not know, its mode)
    public var type: String
    public var reason: String

    public init(path: String, type: String, reason: String) {
        self.path = path; self.pathBase64 = PathBytes.base64IfEscaped(path); self.type = type; self.reason = reason
    }

    /// The omission for a directory entry of this `st_mode`.
    init(path: String, mode: UInt32) {
        switch mode_t(mode) & S_IFMT {
        case S_IFSOCK: self.init(path: path, type: "socket", reason: "a socket is a live endpoint of a running process; no format can restore it")
        default: self.init(path: path, type: String(format: "mode %o", mode), reason: "not a file, directory, symlink, FIFO or device node")
        }
    }
}

extension Omission {
    /// The part of a snapshot's event that says what it does not hold ("" when it holds everything).
    static func summary(_ omitted: [Omission]) -> String {
        guard !omitted.isEmpty else { return "" }
        let shown = omitted.prefix(5).map { "\(PathBytes.printable($0.path)) (\($0.type))" }.joined(separator: ", ")
        return "; not held: \(omitted.count) (\(shown)\(omitted.count > 5 ? ", …" : ""); see `snapfs show`)"
    }
}

extension Store {
    /// What a snapshot does not hold of its source, in path order.
    public func omissions(of id: SnapshotID) throws(StoreError) -> [Omission] {
        do {
            return try db.read { db in
                try Row.fetchAll(db, sql: "SELECT path, type, reason FROM omissions WHERE snapshot_id = ? ORDER BY path", arguments: [id]).map {
                    Omission(path: $0["path"], type: $0["type"], reason: $0["reason"])
                }
            }
        } catch { throw .wrap(error, "cannot read catalog") }
    }

    func insertOmissions(_ db: Database, _ id: SnapshotID, _ omitted: [Omission]) throws {
        let ins = try db.makeStatement(sql: "INSERT OR REPLACE INTO omissions(snapshot_id, path, type, reason) VALUES (?, ?, ?, ?)")
        for o in omitted { try ins.execute(arguments: [id, o.path, o.type, o.reason]) }
    }
}
