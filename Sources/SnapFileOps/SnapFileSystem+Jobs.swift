import Foundation
import Logging
import SnapStore
#if canImport(Glibc)
import Glibc
#endif

/// `by-job/`: the same snapshots as the flat root, grouped by the job they belong to, under the names Flink gave
/// their directories, with a `latest` link per job (SPEC §7, Flink). It is a view, not a second copy:
/// - a snapshot's directory, and everything in it, shows the same inode number, attributes and bytes whichever
///   way it is reached (only the kernel's handle of a directory differs, see `Node.jobView`);
/// - `rmdir by-job/J/NAME` (and so `rm -rf`) is the checked delete of that snapshot, exactly as at the root, with
///   the same errno when refused;
/// - nothing else changes names here: a move would rename the snapshot in the catalog but not the directory its
///   name here comes from, so it is refused (EPERM) and the user is pointed at the root.
extension SnapFileSystem {
    /// The name of `by-job/` at the root.
    static let jobsName = "by-job"

    /// The node a name stands for in `by-job/` or in a job's directory.
    func jobChild(of parent: Node, _ name: String) -> Node? {
        // As at the root: the poller keeps the listing current, and only a miss rereads the catalog.
        let cached = state.withLock { $0.listing }
        if cached.generation >= 0, let hit = Self.jobChild(of: parent, name, in: cached.jobs ?? [:]) { return hit }
        return Self.jobChild(of: parent, name, in: listing().jobs ?? [:])
    }

    private static func jobChild(of parent: Node, _ name: String, in jobs: [String: JobView]) -> Node? {
        switch parent {
        case .jobs:
            return jobs[name] == nil ? nil : .job(name)
        case .job(let j):
            guard let view = jobs[j] else { return nil }
            if name == JobViews.latestName { return view.latest == nil ? nil : .jobLatest(j) }
            return view.byName[name].map { .jobView(.snapshot($0)) }
        default:
            return nil
        }
    }

    /// The entries of `by-job/` or of a job's directory, in catalog order, `latest` last (as at the root).
    func jobEntries(_ n: Node) throws(FSError) -> [(String, Node, UInt32)] {
        let jobs = listing().jobs ?? [:]
        switch n {
        case .jobs:
            return jobs.keys.sorted().map { ($0, .job($0), 0o040000) }
        case .job(let j):
            guard let view = jobs[j] else { throw .notFound }
            var out = view.names.map { ($0, Node.snapshot(view.byName[$0]!), UInt32(0o040000)) }
            if view.latest != nil { out.append((JobViews.latestName, .jobLatest(j), 0o120000)) }
            return out
        default:
            throw .notDirectory
        }
    }

    /// `by-job/` and job directories change whenever the catalog does: their time is the root's, so a listing
    /// the kernel keeps is dropped when it is no longer current. Writable by the owner, as the root is, because
    /// `rmdir` of a snapshot in a job's directory is a delete.
    func jobAttr(_ n: Node) throws(FSError) -> Attr {
        let l = listing()
        let jobs = l.jobs ?? [:]
        switch n {
        case .jobs:
            return dirAttr(n.ino, mode: 0o755, nlink: 2 + jobs.count, mtime: l.changedAt)
        case .job(let j):
            guard let view = jobs[j] else { throw .notFound }
            return dirAttr(n.ino, mode: 0o755, nlink: 2 + view.names.count, mtime: l.changedAt)
        case .jobLatest(let j):
            let target = jobs[j]?.latest ?? ""
            return Attr(ino: n.ino, mode: 0o120777, nlink: 1, size: Int64(target.utf8.count), blocks: 0, mtimeNanos: mountedAtNanos,
                        uid: options.uid, gid: options.gid)
        default:
            throw .notFound
        }
    }

    /// Where a job's `latest` points: the name of its recovery point in the same directory.
    func jobLatestTarget(_ j: String) throws(FSError) -> String {
        guard let t = listing().jobs?[j]?.latest else { throw .notFound }
        return t
    }

    /// `rmdir` in `by-job/` or a job's directory.
    func jobRmdir(in parent: Node, _ name: String) throws(FSError) {
        switch parent {
        case .job(let j):
            if name == JobViews.latestName { throw controlRefusal("rmdir \(Self.jobsName)/\(j)/\(name)") }
            guard case .jobView(.snapshot(let id))? = jobChild(of: parent, name), let flat = snapshotName(id) else { throw .notFound }
            try deleteSnapshot(flat, id, via: "\(Self.jobsName)/\(j)/\(name)")
        default:
            // A job's directory goes when its last snapshot does; until then it is not empty.
            guard jobChild(of: parent, name) != nil else { throw .notFound }
            throw .notEmpty
        }
    }

    /// `unlink` in `by-job/` or a job's directory: `latest` is part of the mount; everything else is a directory.
    func jobUnlink(in parent: Node, _ name: String) throws(FSError) {
        if case .job(let j) = parent, name == JobViews.latestName { throw controlRefusal("unlink \(Self.jobsName)/\(j)/\(name)") }
        guard jobChild(of: parent, name) != nil else { throw .notFound }
        throw .isDirectory
    }

    /// Everything but reading and deleting in `by-job/`: EPERM, with the reason in the event log.
    func viewRefusal(_ what: String) -> FSError {
        refuse(.notPermitted("\(Self.jobsName)/ shows snapshots under the names Flink gave their directories and only reads and deletes: move or create snapshots at the mount's root (mv MNT/NAME MNT/NEW, mkdir MNT/NAME)"),
               snapshot: nil, what)
    }
}
