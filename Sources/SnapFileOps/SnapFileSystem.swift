import Foundation
import Logging
import SnapStore
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// What every file operation on the mount means (SPEC §4), over a `Store`, with no kernel in sight: the FUSE
/// adapter translates requests into calls here and errors into errno, and tests call the same methods directly.
/// Thread-safe: libfuse calls in from many worker threads at once. Nothing slow (a snapshot, a delete) runs
/// while the state lock is held.
public final class SnapFileSystem: Sendable {
    public let store: Store
    public let engine: any SnapshotEngine
    public let options: FileOpsOptions
    let logger = Logger(label: "snapfs.mount")
    let now: @Sendable () -> Date
    let state: Mutex<State>
    /// The store's directory as a plain path: object files are opened by `root + "/" + relative` on every open.
    let rootPath: String
    /// The time shown for the mount's own entries (`latest`, `.snapfs`), which have none of their own.
    let mountedAtNanos: Int64

    /// A snapshot of the catalog's root listing, refreshed when the catalog's generation moves.
    struct Listing {
        var generation: Int64 = -1
        var byName: [String: Snapshot] = [:]
        var byID: [SnapshotID: Snapshot] = [:]
        /// Names in catalog order (oldest first).
        var names: [String] = []
        var latest: String?
        var recoveryPoint: String?
    }

    enum Handle {
        case object(path: String, fd: Int32)
        case buffer([UInt8])
        case trigger(TriggerWrite)
        case directory([DirEntry])
    }

    struct State {
        var listing = Listing()
        var indexes: [SnapshotID: SnapshotIndex] = [:]
        var inodes = InodeTable()
        var staging = StagingArea()
        var handles: [UInt64: Handle] = [:]
        var nextHandle: UInt64 = 1
        /// Open object files by store path, shared by every handle on the same object.
        var fds: [String: (fd: Int32, refs: Int)] = [:]
        /// When a refusal was last written to the event log per snapshot, so `rm -rf` of a protected tree records
        /// one line, not one per file.
        var lastRefusalLogged: [String: Date] = [:]
        /// Root names and inodes the kernel must be told to forget at the next poll.
        var pendingChanges: Set<String> = []
        var pendingInodes: Set<UInt64> = []
        /// Directories whose cached listing the kernel must drop at the next poll.
        var pendingDirectories: Set<UInt64> = []
    }

    public init(store: Store, engine: any SnapshotEngine, options: FileOpsOptions = FileOpsOptions(),
                clock: @escaping @Sendable () -> Date = { Date() }) {
        self.store = store
        self.engine = engine
        self.options = options
        self.now = clock
        self.state = Mutex(State())
        self.rootPath = store.root.path
        self.mountedAtNanos = Int64(clock().timeIntervalSince1970 * 1e9)
    }

    deinit {
        state.withLock { s in for (_, f) in s.fds { close(f.fd) } }
    }

    // MARK: catalog view

    /// Rereads the root listing if the catalog changed; returns the root names whose meaning changed.
    @discardableResult
    public func refresh() -> RootChanges {
        let gen = store.generation()
        if state.withLock({ $0.listing.generation }) == gen { return RootChanges(names: []) }
        let snaps: [Snapshot]
        do { snaps = try store.snapshots() } catch {
            logger.error("cannot read the catalog: \(error)")
            return RootChanges(names: [])
        }
        let job = store.jobStatus()
        var l = Listing()
        l.generation = gen
        for s in snaps { l.byName[s.name] = s; l.byID[s.id] = s; l.names.append(s.name) }
        l.latest = job.recoveryPoint.flatMap { l.byName[$0] != nil ? $0 : nil }
            ?? snaps.max { ($0.completedAt ?? 0, $0.id) < ($1.completedAt ?? 0, $1.id) }?.name
        l.recoveryPoint = job.running ? job.recoveryPoint : nil
        return state.withLock { s -> RootChanges in
            let old = s.listing
            var changed: Set<String> = []
            for (name, snap) in old.byName where l.byName[name]?.id != snap.id { changed.insert(name) }
            for (name, snap) in l.byName where old.byName[name]?.id != snap.id { changed.insert(name) }
            if old.latest != l.latest { changed.insert("latest") }
            var inodes: Set<UInt64> = []
            if Set(old.byID.keys) != Set(l.byID.keys) {
                // Link counts of shared objects moved; indexes of gone snapshots are garbage. Every object inode
                // the kernel can hold attributes for came from a cached index, so invalidating theirs is enough.
                for idx in s.indexes.values {
                    for e in idx.entries.values where e.type == .file { if let p = e.objectPath { inodes.insert(InodeNumber.object(p)) } }
                }
                s.indexes.removeAll()
                for id in s.staging.bySnapshot.keys where l.byID[id] == nil { s.staging.clear(id) }
            }
            s.listing = l
            // A refresh made inside a request (after a delete or a trigger) must not swallow what the kernel has to
            // forget: the poller hands it over.
            s.pendingChanges.formUnion(changed)
            s.pendingInodes.formUnion(inodes)
            return RootChanges(names: changed.sorted(), inodes: Array(inodes))
        }
    }

    /// Called by the adapter's poller: every catalog change since the last poll, whoever noticed it, plus staging
    /// windows that ran out.
    public func poll() -> RootChanges {
        refresh()
        expireStaging()
        return state.withLock { s in
            defer { s.pendingChanges.removeAll(); s.pendingInodes.removeAll(); s.pendingDirectories.removeAll() }
            return RootChanges(names: s.pendingChanges.sorted(), inodes: Array(s.pendingInodes), directories: Array(s.pendingDirectories))
        }
    }

    func expireStaging() {
        let restored = state.withLock { s -> [(SnapshotID, Set<String>)] in
            let back = s.staging.expire(now: now(), window: options.stageWindow)
            // The kernel may hold listings of the directories these entries come back to (`cache_readdir`).
            for (id, paths) in back {
                for p in paths {
                    let parent = SnapshotIndex.split(p).parent
                    s.pendingDirectories.insert(parent.isEmpty ? InodeNumber.snapshotRoot(id) : InodeNumber.directory(id, parent))
                }
            }
            return back
        }
        for (id, _) in restored {
            logger.info("staged unlinks restored: no rmdir followed within the window", metadata: ["snapshot": .stringConvertible(id)])
        }
    }

    func stagedCounts() -> [SnapshotID: Int] { state.withLock { $0.staging.counts } }

    func listing() -> Listing {
        refresh()
        return state.withLock { $0.listing }
    }

    func index(_ id: SnapshotID) throws(FSError) -> SnapshotIndex {
        if let i = state.withLock({ $0.indexes[id] }) { return i }
        let entries: [SnapshotEntry]
        do { entries = try store.entries(of: id) } catch { throw .store(error) }
        let idx = SnapshotIndex(id: id, entries: entries)
        state.withLock { $0.indexes[id] = idx }
        return idx
    }

    func isLive(_ id: SnapshotID) -> Bool { state.withLock { $0.listing.byID[id] != nil } }

    func node(_ ino: UInt64) throws(FSError) -> Node {
        guard let n = state.withLock({ $0.inodes.node(ino) }) else { throw .notFound }
        return n
    }

    func register(_ n: Node) -> UInt64 { state.withLock { $0.inodes.register(n) } }

    // MARK: attributes

    func dirAttr(_ ino: UInt64, mode: UInt32, nlink: Int, mtime: Int64) -> Attr {
        Attr(ino: ino, mode: 0o040000 | (mode & 0o7777), nlink: UInt32(nlink), size: 0, blocks: 0, mtimeNanos: mtime,
             uid: options.uid, gid: options.gid)
    }

    func attr(_ n: Node) throws(FSError) -> Attr {
        let ino = n.ino
        switch n {
        case .root:
            let l = state.withLock { $0.listing }
            return dirAttr(ino, mode: 0o755, nlink: 3 + l.names.count, mtime: Int64((l.byName.values.map(\.createdAt).max() ?? 0) * 1e9))
        case .latest:
            let target = state.withLock { $0.listing.latest } ?? ""
            return Attr(ino: ino, mode: 0o120777, nlink: 1, size: Int64(target.utf8.count), blocks: 0, mtimeNanos: mountedAtNanos,
                        uid: options.uid, gid: options.gid)
        case .controlDir(let d):
            return dirAttr(ino, mode: 0o555, nlink: d == .top ? 5 : 2, mtime: mountedAtNanos)
        case .controlFile(let f):
            let size = try ControlContent.generate(f, fs: self).count
            return Attr(ino: ino, mode: 0o100444, nlink: 1, size: Int64(size), blocks: Int64((size + 511) / 512),
                        mtimeNanos: Int64(now().timeIntervalSince1970 * 1e9), uid: options.uid, gid: options.gid)
        case .trigger:
            return Attr(ino: ino, mode: 0o100600, nlink: 1, size: 0, blocks: 0, mtimeNanos: mountedAtNanos, uid: options.uid, gid: options.gid)
        case .snapshot(let id):
            let snap = state.withLock { $0.listing.byID[id] }
            guard let snap else { throw .notFound }
            let idx = try index(id)
            return dirAttr(ino, mode: 0o755, nlink: 2 + idx.subdirectoryCount(""), mtime: Int64(snap.createdAt * 1e9))
        case .directory(let id, let p):
            let idx = try index(id)
            guard let e = idx.entries[p] else { throw .notFound }
            return dirAttr(ino, mode: e.mode, nlink: 2 + idx.subdirectoryCount(p), mtime: e.mtimeNanos)
        case .file(let id, let held):
            // Link counts move as snapshots come and go; the rest of a stored file never changes.
            let e = (isLive(id) ? (try? index(id))?.entries[held.path] : nil) ?? held
            return Attr(ino: ino, mode: 0o100000 | (e.mode & 0o7777), nlink: UInt32(max(1, e.links)), size: e.size,
                        blocks: (e.size + 511) / 512, mtimeNanos: e.mtimeNanos, uid: options.uid, gid: options.gid)
        case .symlink(let id, let p):
            guard let e = try index(id).entries[p] else { throw .notFound }
            return Attr(ino: ino, mode: 0o120000 | (e.mode & 0o7777), nlink: 1, size: Int64((e.symlinkTarget ?? "").utf8.count),
                        blocks: 0, mtimeNanos: e.mtimeNanos, uid: options.uid, gid: options.gid)
        }
    }

    func entry(_ n: Node) throws(FSError) -> Entry {
        _ = register(n)
        let a = try attr(n)
        switch n {
        case .directory, .file, .symlink:
            // Names inside a snapshot never change (staged unlinks go through the kernel, which drops the entry).
            return Entry(attr: a, entryTimeout: options.snapshotEntryTimeout, attrTimeout: options.snapshotAttrTimeout)
        default:
            // Root names come and go with the catalog; the poller invalidates them, this bounds a missed change.
            return Entry(attr: a, entryTimeout: options.controlTimeout, attrTimeout: options.controlTimeout)
        }
    }
}
