import Foundation
import SnapStore
#if canImport(Glibc)
import Glibc
#endif

/// Every way a file operation can fail, as values. The kernel adapter turns them into errno through `errno` only,
/// so a refusal reads the same wherever it surfaces and tests can assert the reason rather than a number.
public enum FSError: Error, Sendable, Equatable, CustomStringConvertible {
    case notFound
    case notDirectory
    case isDirectory
    case notEmpty
    case exists(String)
    case invalid(String)
    /// Snapshots are immutable (SPEC §4: write, create, chmod ... inside a snapshot).
    case readOnly(String)
    /// Control entries (`latest`, `.snapfs`) cannot be renamed or removed.
    case notPermitted(String)
    case busy(String)
    /// The caller lacks the right the operation needs (EACCES).
    case permissionDenied(String)
    case noAttribute
    case rangeTooSmall
    /// SEEK_DATA past the last data, or any seek past the end of a file (ENXIO).
    case noMoreData
    case io(String)
    case store(StoreError)

    public var errno: Int32 {
        switch self {
        case .notFound: return ENOENT
        case .notDirectory: return ENOTDIR
        case .isDirectory: return EISDIR
        case .notEmpty: return ENOTEMPTY
        case .exists: return EEXIST
        case .invalid: return EINVAL
        case .readOnly: return EROFS
        case .notPermitted: return EPERM
        case .busy: return EBUSY
        case .permissionDenied: return EACCES
        case .noAttribute: return ENODATA
        case .rangeTooSmall: return ERANGE
        case .noMoreData: return ENXIO
        case .io: return EIO
        case .store(let e): return e.errno
        }
    }

    public var description: String {
        switch self {
        case .notFound: return "no such file or directory"
        case .notDirectory: return "not a directory"
        case .isDirectory: return "is a directory"
        case .notEmpty: return "directory not empty"
        case .exists(let s): return s
        case .invalid(let s): return s
        case .readOnly(let s): return s
        case .notPermitted(let s): return s
        case .busy(let s): return s
        case .permissionDenied(let s): return s
        case .noAttribute: return "no such attribute"
        case .rangeTooSmall: return "buffer too small"
        case .noMoreData: return "no data at or after this offset"
        case .io(let s): return s
        case .store(let e): return e.description
        }
    }
}
