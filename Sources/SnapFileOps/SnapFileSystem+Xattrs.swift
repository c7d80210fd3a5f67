import Foundation
import Logging
import SnapStore
#if canImport(Glibc)
import Glibc
#endif

/// Snapshot metadata as `user.snapfs.*` extended attributes; setting them is refused like any write.
extension SnapFileSystem {
    public func listxattr(_ ino: UInt64) throws(FSError) -> [String] {
        switch try node(ino).flat {
        case .snapshot: return SnapshotXattrs.names
        case .file(_, let e): return e.sha256 == nil ? ["user.snapfs.object"] : ["user.snapfs.object", "user.snapfs.sha256"]
        default: return []
        }
    }

    public func getxattr(_ ino: UInt64, name: String) throws(FSError) -> [UInt8] {
        switch try node(ino).flat {
        case .snapshot(let id):
            // `ls -l` asks for security.selinux and system.posix_acl_access on every entry: answer those without
            // building a report, or listing a root of N snapshots costs N reports.
            guard SnapshotXattrs.names.contains(name) else { throw .noAttribute }
            guard let snapName = snapshotName(id) else { throw .notFound }
            let report: SnapshotReport
            do { report = try store.report(snapName) } catch { throw .store(error) }
            guard let v = SnapshotXattrs.value(name, report) else { throw .noAttribute }
            return Array(v.utf8)
        case .file(_, let e):
            if name == "user.snapfs.object", let p = e.objectPath { return PathBytes.kernel(p) }
            if name == "user.snapfs.sha256", let s = e.sha256 { return Array(s.utf8) }
            throw .noAttribute
        default:
            throw .noAttribute
        }
    }

    public func setxattr(_ ino: UInt64, name: String) throws(FSError) {
        let n = try node(ino)
        if let (id, p) = n.snapshotLocation { throw readOnly("setxattr \(name) on \(p.isEmpty ? "snapshot" : p)", id) }
        throw controlRefusal("setxattr \(name)")
    }

    public func removexattr(_ ino: UInt64, name: String) throws(FSError) { try setxattr(ino, name: name) }
}
