import Foundation
import Logging
import SnapStore
#if canImport(Glibc)
import Glibc
#endif

/// Extended attributes through the mount. Every entry of a snapshot has the attributes its source had (POSIX ACLs
/// among them, as `system.posix_acl_*`), and nothing else: a copy of a snapshot (`rsync -aX`, `cp -a`, `restic`)
/// carries nothing SnapFS added. SnapFS's own metadata is the `user.snapfs.*` attributes of a snapshot's directory
/// (and a file's `user.snapfs.object` and `user.snapfs.sha256`), answered by name but not listed, for the same reason (and whole in `.snapfs/snapshots/S.json`). Setting them is
/// refused like any write, except `user.snapfs.hold` on a snapshot, which holds it
/// (`setfattr -n user.snapfs.hold -v REASON S`) and releases it (`setfattr -x user.snapfs.hold S`).
extension SnapFileSystem {
    /// The attribute that is a snapshot's hold: its value is the reason.
    public static let holdAttribute = "user.snapfs.hold"
    /// A file's bytes in the store (store-relative), and their SHA-256: answered by name, never listed, so a backup
    /// tool copying attributes carries neither, while `getfattr -n` still tells an operator where a file lives.
    public static let objectAttribute = "user.snapfs.object"
    public static let checksumAttribute = "user.snapfs.sha256"

    public func listxattr(_ ino: UInt64) throws(FSError) -> [String] {
        try recordedXattrs(node(ino).flat)?.names ?? []
    }

    public func getxattr(_ ino: UInt64, name: String) throws(FSError) -> [UInt8] {
        let n = try node(ino).flat
        switch n {
        case .snapshot(let id) where name == Self.holdAttribute:
            guard let snapName = snapshotName(id) else { throw .notFound }
            let h: Hold?
            do { h = try store.hold(of: snapName) } catch { throw .store(error) }
            guard let h else { throw .noAttribute }
            return Array(h.reason.utf8)
        case .snapshot(let id) where SnapshotXattrs.names.contains(name):
            // `ls -l` asks for security.selinux and system.posix_acl_access on every entry: those are answered from
            // the recorded attributes without building a report, or listing a root of N snapshots costs N reports.
            guard let snapName = snapshotName(id) else { throw .notFound }
            let report: SnapshotReport
            do { report = try store.report(snapName) } catch { throw .store(error) }
            guard let v = SnapshotXattrs.value(name, report) else { throw .noAttribute }
            return Array(v.utf8)
        case .file(_, let e) where name == Self.objectAttribute && e.objectPath != nil:
            return PathBytes.kernel(e.objectPath!)
        case .file(_, let e) where name == Self.checksumAttribute && (e.sha256 != nil || e.sparseDigest != nil):
            // A file stored with holes has its SHA-256 computed (and then recorded) the first time it is asked for.
            let sha: String?
            do { sha = try store.sha256(of: e) } catch { throw .store(error) }
            guard let sha else { throw .noAttribute }
            return Array(sha.utf8)
        default:
            guard let v = try recordedXattrs(n)?.value(name) else { throw .noAttribute }
            return v
        }
    }

    /// The attributes a node's source entry had: a snapshot's directory has its state root's.
    private func recordedXattrs(_ n: Node) throws(FSError) -> ExtendedAttributes? {
        switch n {
        case .snapshot(let id):
            return state.withLock { $0.listing.byID[id] }?.root?.xattrs
        case .directory(let id, let p), .symlink(let id, let p):
            return try index(id).entries[p]?.xattrs
        case .file(_, let e):
            return e.xattrs
        default:
            return nil
        }
    }

    /// `flags` are setxattr(2)'s: XATTR_CREATE (1) refuses to replace a hold, XATTR_REPLACE (2) to add one.
    public func setxattr(_ ino: UInt64, name: String, value: [UInt8] = [], flags: Int32 = 0, caller: Caller = .daemon) throws(FSError) {
        let n = try node(ino)
        if case .snapshot(let id) = n.flat, name == Self.holdAttribute {
            guard let reason = String(validating: value, as: UTF8.self) else {
                throw refuse(.invalid("a hold's reason must be UTF-8 text"), snapshot: snapshotName(id), "hold")
            }
            return try changeHold(id, to: reason, flags: flags, caller: caller)
        }
        if let (id, p) = n.snapshotLocation { throw readOnly("setxattr \(name) on \(p.isEmpty ? "snapshot" : p)", id) }
        throw controlRefusal("setxattr \(name)")
    }

    public func removexattr(_ ino: UInt64, name: String, caller: Caller = .daemon) throws(FSError) {
        let n = try node(ino)
        if case .snapshot(let id) = n.flat, name == Self.holdAttribute { return try changeHold(id, to: nil, flags: 0, caller: caller) }
        if let (id, p) = n.snapshotLocation { throw readOnly("removexattr \(name) on \(p.isEmpty ? "snapshot" : p)", id) }
        throw controlRefusal("removexattr \(name)")
    }

    /// Holds a snapshot with `reason`, or releases it (nil). Needs the right to delete snapshots: a hold decides
    /// what may be deleted, and the kernel checks only the snapshot directory's own mode for an attribute.
    private func changeHold(_ id: SnapshotID, to reason: String?, flags: Int32, caller: Caller) throws(FSError) {
        guard let name = snapshotName(id) else { throw .notFound }
        let what = reason == nil ? "release of \(name)'s hold" : "hold of \(name)"
        guard mayChangeSnapshots(caller) else {
            throw refuse(.permissionDenied("holds are set and released by those who may delete snapshots"), snapshot: name,
                         "\(what) by uid \(caller.uid)")
        }
        do {
            if let reason {
                let current = try store.hold(of: name)
                if flags & 1 != 0, current != nil { throw refuse(.exists("\(name) is held already"), snapshot: name, what) }
                if flags & 2 != 0, current == nil { throw refuse(.noAttribute, snapshot: name, what) }
                try store.hold(name, reason: reason)
            } else if try store.release(name) == nil {
                throw FSError.noAttribute
            }
        } catch let e as FSError {
            throw e
        } catch let e as StoreError {
            throw refuse(.store(e), snapshot: name, what)
        } catch {
            throw .io("\(error)")
        }
        refresh()
    }
}
