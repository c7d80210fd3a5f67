import Foundation
import GRDB

/// Everything the store can refuse or fail at, as values. Callers map these to exit codes or errno in one place each
/// (`StoreError.errno` is the kernel-facing one) so that a refusal reads the same wherever it surfaces.
public enum StoreError: Error, Sendable, Equatable, CustomStringConvertible {
    /// No snapshot by that name.
    case noSuchSnapshot(String)
    /// A snapshot by that name exists already; the store never replaces one.
    case alreadyExists(String)
    /// A name, label, format or argument that cannot be accepted, with why.
    case badInput(String)
    /// The snapshot may not be touched now (recovery point, being written, operation in flight).
    case busy(snapshot: String, reason: String)
    /// The operation is not allowed on this kind of thing at all.
    case notPermitted(String)
    /// The store on disk is not what it should be (catalog row damaged, file missing).
    case corrupt(String)
    /// An engine could not produce a snapshot; the store is left as it was.
    case snapshotFailed(String)
    /// An engine operation other than taking a snapshot failed (a job's rescale, stop or restart): the message
    /// says which step and why, so it is not prefixed the way a failed snapshot is.
    case operationFailed(String)
    /// Something outside the store failed: disk full, permission denied.
    case io(path: String, errno: Int32, what: String)
    /// Another daemon serves this store already, or another process holds the catalog locked.
    case locked(String)
    /// The store can be read but not written (a read-only mount, no write permission): the message says what was
    /// asked for.
    case readOnly(String)

    public var description: String {
        switch self {
        case .noSuchSnapshot(let n): return "no snapshot named '\(n)'"
        case .alreadyExists(let n): return "a snapshot named '\(n)' already exists"
        case .badInput(let s): return s
        case .busy(let n, let r): return "snapshot '\(n)' is busy: \(r)"
        case .notPermitted(let s): return s
        case .corrupt(let s): return "store damaged: \(s)"
        case .snapshotFailed(let s): return "snapshot failed: \(s)"
        case .operationFailed(let s): return s
        case .io(let p, let e, let w): return p.isEmpty ? "\(w): \(String(cString: strerror(e)))" : "\(w) \(p): \(String(cString: strerror(e)))"
        case .locked(let s): return s
        case .readOnly(let s): return s
        }
    }

    /// The errno a file operation reports for this error (SPEC §4).
    public var errno: Int32 {
        switch self {
        case .noSuchSnapshot: return ENOENT
        case .alreadyExists: return EEXIST
        case .badInput: return EINVAL
        case .busy: return EBUSY
        case .notPermitted: return EPERM
        case .corrupt: return EIO
        case .snapshotFailed, .operationFailed: return EIO
        case .io(_, let e, _): return e == ENOSPC || e == EDQUOT ? e : EIO
        case .locked: return EBUSY
        case .readOnly: return EROFS
        }
    }

    /// Process exit code for the command line (documented in the README).
    public var exitCode: Int32 {
        switch self {
        case .badInput: return 2
        case .noSuchSnapshot: return 3
        case .alreadyExists: return 4
        case .busy, .locked: return 5
        case .notPermitted, .readOnly: return 6
        case .corrupt: return 7
        case .snapshotFailed, .operationFailed, .io: return 8
        }
    }

    /// The one place a lower layer's failure becomes a store error. SQLite's result code says whose fault it is:
    /// a full disk or a failed read is the machine's (exit 8, and ENOSPC stays ENOSPC), a lock is another
    /// process's (exit 5), and only a file that is not a database, or a database that is not ours, is damage.
    static func wrap(_ error: any Error, _ what: String, storeRoot: String? = nil) -> StoreError {
        if let e = error as? StoreError { return e }
        if let e = error as? POSIXErrorCarrier { return .io(path: e.path, errno: e.code, what: what) }
        if let e = error as? DatabaseError { return catalogError(e, what, storeRoot: storeRoot) }
        if let (path, code) = posixCause(of: error) { return .io(path: path, errno: code, what: what) }
        return .corrupt("\(what): \(error)")
    }

    /// The system call failure inside a Foundation error (a directory or file Foundation could not write).
    static func posixCause(of error: any Error) -> (String, Int32)? {
        let ns = error as NSError
        let path = ns.userInfo[NSFilePathErrorKey] as? String ?? ""
        if ns.domain == NSPOSIXErrorDomain { return (path, Int32(ns.code)) }
        if let u = ns.userInfo[NSUnderlyingErrorKey] as? NSError, u.domain == NSPOSIXErrorDomain { return (path, Int32(u.code)) }
        guard ns.domain == NSCocoaErrorDomain else { return nil }
        switch CocoaError.Code(rawValue: ns.code) {
        case .fileWriteOutOfSpace: return (path, ENOSPC)
        case .fileWriteVolumeReadOnly: return (path, EROFS)
        case .fileWriteNoPermission, .fileReadNoPermission: return (path, EACCES)
        case .fileWriteFileExists: return (path, EEXIST)
        case .fileNoSuchFile, .fileReadNoSuchFile: return (path, ENOENT)
        default: return nil
        }
    }

    /// `storeRoot`, when known, lets a failed write be told apart: SQLite reports a log it could not grow on a full
    /// disk as a plain I/O error, and a file system with no space left says which it was.
    static func catalogError(_ e: DatabaseError, _ what: String, storeRoot: String? = nil) -> StoreError {
        let detail = e.message ?? "\(e.resultCode)"
        switch e.resultCode.primaryResultCode {
        case .SQLITE_FULL: return .io(path: "", errno: ENOSPC, what: "\(what) (catalog)")
        case .SQLITE_BUSY, .SQLITE_LOCKED:
            return .locked("\(what): the catalog is locked by another process (\(detail)); try again")
        case .SQLITE_READONLY: return .readOnly("\(what): the catalog is read-only (\(detail))")
        case .SQLITE_PERM, .SQLITE_AUTH: return .io(path: "", errno: EACCES, what: "\(what) (catalog: \(detail))")
        case .SQLITE_NOMEM: return .io(path: "", errno: ENOMEM, what: "\(what) (catalog)")
        case .SQLITE_IOERR, .SQLITE_CANTOPEN, .SQLITE_PROTOCOL, .SQLITE_NOLFS:
            var v = statvfs()
            if let storeRoot, statvfs(storeRoot, &v) == 0, v.f_bavail == 0 {
                return .io(path: "", errno: ENOSPC, what: "\(what) (catalog: \(detail))")
            }
            return .io(path: "", errno: EIO, what: "\(what) (catalog: \(detail))")
        case .SQLITE_CORRUPT, .SQLITE_NOTADB, .SQLITE_FORMAT, .SQLITE_SCHEMA, .SQLITE_MISMATCH, .SQLITE_CONSTRAINT,
             .SQLITE_ERROR, .SQLITE_RANGE, .SQLITE_EMPTY, .SQLITE_TOOBIG:
            // Generic errors are what a statement of ours meets in a catalog whose tables are not ours.
            return .corrupt("\(what): catalog: \(detail)")
        default:
            return .io(path: "", errno: EIO, what: "\(what) (catalog: \(detail))")
        }
    }
}

/// A failed system call with the path it was about.
struct POSIXErrorCarrier: Error { let path: String; let code: Int32 }
