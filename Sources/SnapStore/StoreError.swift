import Foundation

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
    /// Something outside the store failed: disk full, permission denied.
    case io(path: String, errno: Int32, what: String)
    /// Another daemon serves this store already.
    case locked(String)

    public var description: String {
        switch self {
        case .noSuchSnapshot(let n): return "no snapshot named '\(n)'"
        case .alreadyExists(let n): return "a snapshot named '\(n)' already exists"
        case .badInput(let s): return s
        case .busy(let n, let r): return "snapshot '\(n)' is busy: \(r)"
        case .notPermitted(let s): return s
        case .corrupt(let s): return "store damaged: \(s)"
        case .snapshotFailed(let s): return "snapshot failed: \(s)"
        case .io(let p, let e, let w): return "\(w) \(p): \(String(cString: strerror(e)))"
        case .locked(let s): return s
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
        case .snapshotFailed: return EIO
        case .io(_, let e, _): return e == ENOSPC ? ENOSPC : EIO
        case .locked: return EBUSY
        }
    }

    /// Process exit code for the command line (documented in the README).
    public var exitCode: Int32 {
        switch self {
        case .badInput: return 2
        case .noSuchSnapshot: return 3
        case .alreadyExists: return 4
        case .busy, .locked: return 5
        case .notPermitted: return 6
        case .corrupt: return 7
        case .snapshotFailed, .io: return 8
        }
    }

    static func wrap(_ error: any Error, _ what: String) -> StoreError {
        if let e = error as? StoreError { return e }
        if let e = error as? POSIXErrorCarrier { return .io(path: e.path, errno: e.code, what: what) }
        return .corrupt("\(what): \(error)")
    }
}

/// A failed system call with the path it was about.
struct POSIXErrorCarrier: Error { let path: String; let code: Int32 }
