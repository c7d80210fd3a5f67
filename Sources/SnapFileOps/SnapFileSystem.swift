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
    private let now: @Sendable () -> Date
    private let state: Mutex<State>
    /// The time shown for the mount's own entries (`latest`, `.snapfs`), which have none of their own.
    private let mountedAtNanos: Int64

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
    }

    public init(store: Store, engine: any SnapshotEngine, options: FileOpsOptions = FileOpsOptions(),
                clock: @escaping @Sendable () -> Date = { Date() }) {
        self.store = store
        self.engine = engine
        self.options = options
        self.now = clock
        self.state = Mutex(State())
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
            if Set(old.byID.keys) != Set(l.byID.keys) {
                // Link counts of shared objects moved; indexes of gone snapshots are garbage.
                s.indexes.removeAll()
                for id in s.staging.bySnapshot.keys where l.byID[id] == nil { s.staging.clear(id) }
            }
            s.listing = l
            return RootChanges(names: changed.sorted())
        }
    }

    /// Called by the adapter's poller: catalog changes plus staging windows that ran out.
    public func poll() -> RootChanges {
        let changes = refresh()
        expireStaging()
        return changes
    }

    func expireStaging() {
        let restored = state.withLock { $0.staging.expire(now: now(), window: options.stageWindow) }
        for id in restored {
            logger.info("staged unlinks restored: no rmdir followed within the window", metadata: ["snapshot": .stringConvertible(id)])
        }
    }

    func stagedCounts() -> [SnapshotID: Int] { state.withLock { $0.staging.counts } }

    private func listing() -> Listing {
        refresh()
        return state.withLock { $0.listing }
    }

    private func index(_ id: SnapshotID) throws(FSError) -> SnapshotIndex {
        if let i = state.withLock({ $0.indexes[id] }) { return i }
        let entries: [SnapshotEntry]
        do { entries = try store.entries(of: id) } catch { throw .store(error) }
        let idx = SnapshotIndex(id: id, entries: entries)
        state.withLock { $0.indexes[id] = idx }
        return idx
    }

    private func isLive(_ id: SnapshotID) -> Bool { state.withLock { $0.listing.byID[id] != nil } }

    private func node(_ ino: UInt64) throws(FSError) -> Node {
        guard let n = state.withLock({ $0.inodes.node(ino) }) else { throw .notFound }
        return n
    }

    private func register(_ n: Node) -> UInt64 { state.withLock { $0.inodes.register(n) } }

    // MARK: attributes

    private func dirAttr(_ ino: UInt64, mode: UInt32, nlink: Int, mtime: Int64) -> Attr {
        Attr(ino: ino, mode: 0o040000 | (mode & 0o7777), nlink: UInt32(nlink), size: 0, blocks: 0, mtimeNanos: mtime,
             uid: options.uid, gid: options.gid)
    }

    private func attr(_ n: Node) throws(FSError) -> Attr {
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

    private func entry(_ n: Node) throws(FSError) -> Entry {
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

    // MARK: lookup, getattr, readdir

    /// The node a name stands for in a directory, or nil.
    private func child(of parent: Node, _ name: String) throws(FSError) -> Node? {
        switch parent {
        case .root:
            let l = listing()
            if name == "latest" { return l.latest == nil ? nil : .latest }
            if name == ".snapfs" { return .controlDir(.top) }
            return l.byName[name].map { .snapshot($0.id) }
        case .controlDir(.top):
            switch name {
            case "trigger": return .controlDir(.trigger)
            case "requests": return .controlDir(.requests)
            case "snapshots": return .controlDir(.snapshots)
            case "formats": return .controlFile(.formats)
            case "status": return .controlFile(.status)
            case "events": return .controlFile(.events)
            default: return nil
            }
        case .controlDir(.trigger):
            return TriggerFormat(rawValue: name).map { .trigger($0) }
        case .controlDir(.requests):
            guard name.hasSuffix(".json"), let seq = Int64(name.dropLast(5)), store.request(seq) != nil else { return nil }
            return .controlFile(.request(seq))
        case .controlDir(.snapshots):
            guard name.hasSuffix(".json") else { return nil }
            let n = String(name.dropLast(5))
            return listing().byName[n] == nil ? nil : .controlFile(.report(n))
        case .snapshot(let id), .directory(let id, _):
            guard isLive(id) else { throw .notFound }
            let dir = parent.snapshotLocation!.1
            let path = SnapshotIndex.join(dir, name)
            guard let e = try index(id).entries[path] else { return nil }
            expireStaging()
            if state.withLock({ $0.staging.hides(id, path) }) { return nil }
            switch e.type {
            case .directory: return .directory(id, path)
            case .file: return .file(id, e)
            case .symlink: return .symlink(id, path)
            }
        default:
            throw .notDirectory
        }
    }

    public func lookup(parent: UInt64, name: String) throws(FSError) -> Entry {
        let p = try node(parent)
        guard let n = try child(of: p, name) else { throw .notFound }
        return try entry(n)
    }

    public func getattr(_ ino: UInt64) throws(FSError) -> Attr {
        let n = try node(ino)
        if case .root = n { refresh() }
        return try attr(n)
    }

    public func opendir(_ ino: UInt64) throws(FSError) -> UInt64 {
        let n = try node(ino)
        var out = [DirEntry(name: ".", ino: ino, mode: 0o040000), DirEntry(name: "..", ino: InodeNumber.root, mode: 0o040000)]
        func add(_ name: String, _ c: Node, _ mode: UInt32) { out.append(DirEntry(name: name, ino: register(c), mode: mode)) }
        switch n {
        case .root:
            let l = listing()
            for name in l.names { add(name, .snapshot(l.byName[name]!.id), 0o040000) }
            if l.latest != nil { add("latest", .latest, 0o120000) }
            add(".snapfs", .controlDir(.top), 0o040000)
        case .controlDir(.top):
            add("trigger", .controlDir(.trigger), 0o040000)
            add("requests", .controlDir(.requests), 0o040000)
            add("snapshots", .controlDir(.snapshots), 0o040000)
            add("formats", .controlFile(.formats), 0o100000)
            add("status", .controlFile(.status), 0o100000)
            add("events", .controlFile(.events), 0o100000)
        case .controlDir(.trigger):
            for f in TriggerFormat.allCases { add(f.rawValue, .trigger(f), 0o100000) }
        case .controlDir(.requests):
            let reqs: [SnapshotRequest]
            do { reqs = try store.requests() } catch { throw .store(error) }
            for r in reqs { add("\(r.seq).json", .controlFile(.request(r.seq)), 0o100000) }
        case .controlDir(.snapshots):
            for name in listing().names { add("\(name).json", .controlFile(.report(name)), 0o100000) }
        case .snapshot(let id), .directory(let id, _):
            guard isLive(id) else { throw .notFound }
            let dir = n.snapshotLocation!.1
            let idx = try index(id)
            expireStaging()
            let staging = state.withLock { $0.staging }
            for name in idx.children[dir] ?? [] {
                let path = SnapshotIndex.join(dir, name)
                guard let e = idx.entries[path], !staging.hides(id, path) else { continue }
                switch e.type {
                case .directory: add(name, .directory(id, path), 0o040000)
                case .file: add(name, .file(id, e), 0o100000)
                case .symlink: add(name, .symlink(id, path), 0o120000)
                }
            }
        default:
            throw .notDirectory
        }
        return addHandle(.directory(out))
    }

    /// Entries from `offset` on (offset = how many the caller has already consumed).
    public func readdir(handle: UInt64, offset: Int) throws(FSError) -> ArraySlice<DirEntry> {
        guard case .directory(let list)? = state.withLock({ $0.handles[handle] }) else { throw .badHandle }
        return offset < list.count ? list[offset...] : []
    }

    public func readlink(_ ino: UInt64) throws(FSError) -> String {
        switch try node(ino) {
        case .latest:
            guard let t = listing().latest else { throw .notFound }
            return t
        case .symlink(let id, let p):
            guard let t = try index(id).entries[p]?.symlinkTarget else { throw .notFound }
            return t
        default:
            throw .invalid("not a symbolic link")
        }
    }

    public func statfs() -> FSStats {
        var v = statvfs()
        _ = statvfs(store.root.path, &v)
        let files = state.withLock { s in s.listing.byID.count }
        return FSStats(blockSize: UInt64(v.f_frsize), blocks: UInt64(v.f_blocks), blocksFree: UInt64(v.f_bfree),
                       blocksAvailable: UInt64(v.f_bavail), files: UInt64(max(files, 1)), filesFree: 0, nameMax: 255)
    }

    // MARK: open, read, release

    private func addHandle(_ h: Handle) -> UInt64 {
        state.withLock { s in
            let id = s.nextHandle
            s.nextHandle += 1
            s.handles[id] = h
            return id
        }
    }

    public func open(_ ino: UInt64, flags: Int32) throws(FSError) -> OpenReply {
        let n = try node(ino)
        let writing = flags & O_ACCMODE != O_RDONLY
        switch n {
        case .file(let id, let e):
            if writing || flags & O_TRUNC != 0 { throw readOnly("write to \(e.path)", id) }
            guard let rel = e.objectPath else { throw .io("\(e.path) has no stored object") }
            let fd = try state.withLock { s throws(FSError) -> Int32 in
                if var f = s.fds[rel] { f.refs += 1; s.fds[rel] = f; return f.fd }
                let fd = Glibc.open(store.url(ofObjectPath: rel).path, O_RDONLY | O_CLOEXEC)
                guard fd >= 0 else { throw .io("cannot open stored object \(rel): \(String(cString: strerror(errno)))") }
                s.fds[rel] = (fd, 1)
                return fd
            }
            return OpenReply(handle: addHandle(.object(path: rel, fd: fd)), directIO: false, keepCache: true)
        case .controlFile(let f):
            if writing { throw .notPermitted("control files are read-only") }
            return OpenReply(handle: addHandle(.buffer(try ControlContent.generate(f, fs: self))), directIO: true, keepCache: false)
        case .trigger(let f):
            // Reading a trigger never triggers anything (SPEC §6).
            guard writing else { return OpenReply(handle: addHandle(.buffer([])), directIO: true, keepCache: false) }
            return OpenReply(handle: addHandle(.trigger(TriggerWrite(format: f))), directIO: true, keepCache: false)
        case .root, .snapshot, .directory, .controlDir:
            throw .isDirectory
        case .latest, .symlink:
            throw .invalid("cannot open a symbolic link")
        }
    }

    /// Reads into `buffer`; returns how many bytes were read (0 at the end).
    public func read(handle: UInt64, offset: Int64, into buffer: UnsafeMutableRawBufferPointer) throws(FSError) -> Int {
        guard let h = state.withLock({ $0.handles[handle] }) else { throw .badHandle }
        switch h {
        case .object(let path, let fd):
            var done = 0
            while done < buffer.count {
                let n = pread(fd, buffer.baseAddress! + done, buffer.count - done, off_t(offset) + off_t(done))
                if n < 0 {
                    if errno == EINTR { continue }
                    throw .io("cannot read stored object \(path): \(String(cString: strerror(errno)))")
                }
                if n == 0 { break }
                done += n
            }
            return done
        case .buffer(let bytes):
            guard offset < bytes.count else { return 0 }
            let n = min(buffer.count, bytes.count - Int(offset))
            bytes.withUnsafeBytes { src in
                buffer.baseAddress!.copyMemory(from: src.baseAddress! + Int(offset), byteCount: n)
            }
            return n
        case .trigger:
            return 0
        case .directory:
            throw .isDirectory
        }
    }

    public func release(handle: UInt64) {
        state.withLock { s in
            guard let h = s.handles.removeValue(forKey: handle) else { return }
            if case .object(let path, _) = h, var f = s.fds[path] {
                f.refs -= 1
                if f.refs <= 0 { close(f.fd); s.fds[path] = nil } else { s.fds[path] = f }
            }
        }
    }

    // MARK: refusals

    /// Every refusal goes to the event log and the daemon's log (SPEC §4: never silent); repeated refusals of the
    /// same kind on one snapshot within a few seconds, as `rm -rf` produces, are logged once.
    func refuse(_ error: FSError, snapshot: String?, _ what: String) -> FSError {
        let key = (snapshot ?? "-") + "|" + String(describing: error.errno)
        let t = now()
        let record = state.withLock { s -> Bool in
            if let last = s.lastRefusalLogged[key], t.timeIntervalSince(last) < 5 { return false }
            s.lastRefusalLogged[key] = t
            return true
        }
        if record {
            store.recordEvent("refusal", snapshot: snapshot, "\(what) refused: \(error)")
        } else {
            logger.debug("refused", metadata: ["snapshot": .string(snapshot ?? "-"), "what": .string(what)])
        }
        return error
    }

    private func snapshotName(_ id: SnapshotID) -> String? { state.withLock { $0.listing.byID[id]?.name } }

    private func readOnly(_ what: String, _ id: SnapshotID?) -> FSError {
        refuse(.readOnly("snapshots are immutable"), snapshot: id.flatMap(snapshotName), what)
    }

    private func controlRefusal(_ what: String) -> FSError {
        refuse(.notPermitted("`latest` and `.snapfs` are part of the mount and cannot be changed"), snapshot: nil, what)
    }

    /// What kind of place a directory is, for the operations that create or remove names in it.
    private enum Place { case root, snapshot(SnapshotID, String), control }

    private func place(_ n: Node) throws(FSError) -> Place {
        switch n {
        case .root: return .root
        case .snapshot(let id): return .snapshot(id, "")
        case .directory(let id, let p): return .snapshot(id, p)
        case .controlDir: return .control
        default: throw .notDirectory
        }
    }

    // MARK: mutating operations

    public func setattr(_ ino: UInt64, _ req: SetAttrRequest, handle: UInt64?) throws(FSError) -> Attr {
        let n = try node(ino)
        switch n {
        case .trigger(let f):
            // `touch` (times only) asks for a snapshot like a write does; the truncation of `echo x >` does not.
            if req.times && req.size == nil { armTriggers(f, handle: handle) }
            if req.mode != nil || req.uid != nil || req.gid != nil { throw controlRefusal("chmod/chown of trigger \(f.rawValue)") }
            return try attr(n)
        case .root, .latest, .controlDir, .controlFile:
            throw controlRefusal("setattr")
        case .snapshot, .directory, .file, .symlink:
            let (id, p) = n.snapshotLocation!
            throw readOnly("setattr of \(p.isEmpty ? "snapshot" : p)", id)
        }
    }

    public func mkdir(parent: UInt64, name: String) throws(FSError) -> Entry {
        switch try place(try node(parent)) {
        case .control: throw controlRefusal("mkdir \(name)")
        case .snapshot(let id, let p): throw readOnly("mkdir \(SnapshotIndex.join(p, name))", id)
        case .root:
            if try child(of: .root, name) != nil { throw refuse(.exists("'\(name)' exists"), snapshot: name, "mkdir \(name)") }
            logger.info("snapshot requested by mkdir", metadata: ["name": .string(name)])
            let result: Result<Snapshot, StoreError>
            do {
                result = try store.requestSnapshot(engine: engine, format: .default, label: name, source: "mkdir").1
            } catch {
                throw .store(error)
            }
            switch result {
            case .success(let s):
                refresh()
                return try entry(.snapshot(s.id))
            case .failure(let e):
                logger.error("snapshot by mkdir failed", metadata: ["name": .string(name), "error": .string(e.description)])
                if case .alreadyExists = e { throw .store(e) }
                if case .badInput = e { throw .store(e) }
                throw .io(e.description)
            }
        }
    }

    public func create(parent: UInt64, name: String, flags: Int32) throws(FSError) -> (Entry, OpenReply) {
        let p = try node(parent)
        if case .controlDir(.trigger) = p {
            // Only the four trigger files exist; an unknown one is not created (SPEC §6).
            guard let f = TriggerFormat(rawValue: name) else {
                throw refuse(.notFound, snapshot: nil, "create of unknown trigger '\(name)'")
            }
            let e = try entry(.trigger(f))
            return (e, try open(e.attr.ino, flags: flags))
        }
        switch try place(p) {
        case .control: throw controlRefusal("create \(name)")
        case .snapshot(let id, let dir): throw readOnly("create \(SnapshotIndex.join(dir, name))", id)
        case .root: throw refuse(.readOnly("only snapshots live here: mkdir NAME requests one"), snapshot: nil, "create \(name)")
        }
    }

    public func symlink(parent: UInt64, name: String, target: String) throws(FSError) -> Entry {
        switch try place(try node(parent)) {
        case .control: throw controlRefusal("symlink \(name)")
        case .snapshot(let id, let dir): throw readOnly("symlink \(SnapshotIndex.join(dir, name))", id)
        case .root: throw refuse(.readOnly("only snapshots live here"), snapshot: nil, "symlink \(name)")
        }
    }

    public func link(_ ino: UInt64, newParent: UInt64, newName: String) throws(FSError) -> Entry {
        switch try place(try node(newParent)) {
        case .control: throw controlRefusal("link \(newName)")
        case .snapshot(let id, let dir): throw readOnly("link \(SnapshotIndex.join(dir, newName))", id)
        case .root: throw refuse(.readOnly("only snapshots live here"), snapshot: nil, "link \(newName)")
        }
    }

    public func unlink(parent: UInt64, name: String) throws(FSError) {
        let p = try node(parent)
        switch try place(p) {
        case .control: throw controlRefusal("unlink .snapfs/…/\(name)")
        case .root:
            if name == "latest" || name == ".snapfs" { throw controlRefusal("unlink \(name)") }
            guard try child(of: p, name) != nil else { throw .notFound }
            throw .isDirectory
        case .snapshot(let id, _):
            guard let c = try child(of: p, name) else { throw .notFound }
            if case .directory = c { throw .isDirectory }
            try stage(id, c.snapshotLocation!.1)
        }
    }

    public func rmdir(parent: UInt64, name: String) throws(FSError) {
        let p = try node(parent)
        switch try place(p) {
        case .control: throw controlRefusal("rmdir .snapfs/…/\(name)")
        case .root:
            if name == "latest" || name == ".snapfs" { throw controlRefusal("rmdir \(name)") }
            guard case .snapshot(let id)? = try child(of: p, name) else { throw .notFound }
            do {
                let sum = try store.delete(name, reason: "rmdir in the mount")
                logger.info("deleted by rmdir", metadata: ["snapshot": .string(name), "objects removed": .stringConvertible(sum.removedObjects)])
            } catch {
                // The store has already recorded a refusal; staged entries stay staged until their window ends.
                logger.warning("rmdir refused", metadata: ["snapshot": .string(name), "reason": .string(error.description)])
                throw .store(error)
            }
            state.withLock { s in s.staging.clear(id); s.indexes[id] = nil }
            refresh()
        case .snapshot(let id, _):
            guard let c = try child(of: p, name) else { throw .notFound }
            guard case .directory(_, let path) = c else { throw .notDirectory }
            let idx = try index(id)
            let visible = state.withLock { s in (idx.children[path] ?? []).contains { !s.staging.hides(id, SnapshotIndex.join(path, $0)) } }
            if visible {
                // Fail as a protected snapshot would, so `rm -rf` of the recovery point reports EBUSY throughout.
                if case .refused(let why) = store.deletability(of: snapshotName(id) ?? "") {
                    throw refuse(.busy(why), snapshot: snapshotName(id), "rmdir \(path)")
                }
                throw .notEmpty
            }
            try stage(id, path)
        }
    }

    /// Hides an entry inside a snapshot (SPEC §4). The first one of a round checks that the snapshot may be deleted
    /// at all, so `rm -r` of a protected snapshot fails at once with nothing staged.
    private func stage(_ id: SnapshotID, _ path: String) throws(FSError) {
        expireStaging()
        let name = snapshotName(id) ?? "#\(id)"
        if state.withLock({ $0.staging.isEmpty(id) }) {
            if case .refused(let why) = store.deletability(of: name) {
                throw refuse(.busy("snapshot '\(name)' may not be deleted: \(why)"), snapshot: name, "unlink of \(path)")
            }
            logger.info("staging unlinks; rmdir of the snapshot deletes it", metadata: ["snapshot": .string(name)])
        }
        let t = now()
        state.withLock { $0.staging.stage(id, path, now: t) }
    }

    public func rename(parent: UInt64, name: String, newParent: UInt64, newName: String, flags: UInt32) throws(FSError) {
        let p = try node(parent), np = try node(newParent)
        switch try place(p) {
        case .control: throw controlRefusal("rename of .snapfs/…/\(name)")
        case .snapshot(let id, let dir): throw readOnly("rename of \(SnapshotIndex.join(dir, name))", id)
        case .root:
            if name == "latest" || name == ".snapfs" { throw controlRefusal("rename of \(name)") }
            guard case .snapshot? = try child(of: p, name) else { throw .notFound }
            switch try place(np) {
            case .control: throw controlRefusal("rename of \(name) into .snapfs")
            case .snapshot(let tid, let dir):
                if dir.isEmpty {
                    // `mv S T` with T an existing snapshot asks to put S inside T: a snapshot is never replaced or nested.
                    throw refuse(.exists("snapshot '\(snapshotName(tid) ?? "?")' exists"), snapshot: name, "move of \(name)")
                }
                throw readOnly("move of \(name) into a snapshot", tid)
            case .root:
                if newName == name { return }
                // RENAME_EXCHANGE (2) would swap two snapshots' names; RENAME_WHITEOUT (4) makes no sense here.
                if flags & ~UInt32(1) != 0 { throw refuse(.invalid("unsupported rename flags"), snapshot: name, "move of \(name)") }
                if try child(of: .root, newName) != nil {
                    throw refuse(.exists("'\(newName)' exists: a snapshot is never replaced"), snapshot: name, "move to \(newName)")
                }
                do { try store.rename(name, to: newName) } catch { throw .store(error) }
                refresh()
            }
        }
    }

    // MARK: trigger files

    struct TriggerWrite {
        var format: TriggerFormat
        var content: [UInt8] = []
        /// Set by a write or a `touch`: the next flush takes the snapshot.
        var armed = false
        var fired = false
        var rejected = false
    }

    private func armTriggers(_ f: TriggerFormat, handle: UInt64?) {
        state.withLock { s in
            for (id, h) in s.handles where handle == nil || handle == id {
                if case .trigger(var t) = h, t.format == f, !t.fired { t.armed = true; s.handles[id] = .trigger(t) }
            }
        }
    }

    /// The label a trigger's content asks for: its first line, or nil for none.
    static func label(of content: [UInt8]) -> (label: String?, complete: Bool) {
        let line = content.split(separator: 0x0a, maxSplits: 1, omittingEmptySubsequences: false).first ?? []
        var s = String(decoding: line, as: UTF8.self)
        if s.hasSuffix("\r") { s.removeLast() }
        return (s.isEmpty ? nil : s, content.contains(0x0a))
    }

    private func validate(label: String) throws(FSError) {
        do { try SnapshotName.validateLabel(label) } catch { throw .invalid(error.description) }
        if (try? store.snapshot(named: label)) != nil { throw .invalid("a snapshot named '\(label)' already exists: labels are unique") }
    }

    public func write(handle: UInt64, offset: Int64, data: UnsafeRawBufferPointer) throws(FSError) -> Int {
        guard let h = state.withLock({ $0.handles[handle] }) else { throw .badHandle }
        guard case .trigger(var t) = h else {
            if case .object = h { throw readOnly("write", nil) }
            throw .badHandle
        }
        let end = Int(offset) + data.count
        guard offset >= 0, end <= 64 * 1024 else {
            throw refuse(.invalid("trigger content is at most 64 KiB: one line with an optional label"), snapshot: nil, "trigger \(t.format.rawValue)")
        }
        if t.content.count < end { t.content += [UInt8](repeating: 0, count: end - t.content.count) }
        t.content.replaceSubrange(Int(offset)..<end, with: data)
        t.armed = true
        let (label, complete) = Self.label(of: t.content)
        if complete, let label {
            do { try validate(label: label) } catch {
                t.rejected = true
                state.withLock { $0.handles[handle] = .trigger(t) }
                throw refuse(error, snapshot: nil, "trigger \(t.format.rawValue) with label '\(label)'")
            }
        }
        state.withLock { $0.handles[handle] = .trigger(t) }
        return data.count
    }

    /// Called on every `close` of a descriptor (dup'd descriptors flush more than once). The first flush after a
    /// write or `touch` takes the snapshot, because the kernel returns this call's error from `close(2)`: a
    /// trigger reports 0 only once its snapshot is complete and listed, EIO if it failed.
    public func flush(handle: UInt64) throws(FSError) {
        let job = state.withLock { s -> TriggerWrite? in
            guard case .trigger(var t)? = s.handles[handle], t.armed, !t.fired, !t.rejected else { return nil }
            t.fired = true
            s.handles[handle] = .trigger(t)
            return t
        }
        guard let job else { return }
        let (label, _) = Self.label(of: job.content)
        if let label { try validate(label: label) }
        logger.info("trigger", metadata: ["format": .string(job.format.rawValue), "label": .string(label ?? "-")])
        let result: Result<Snapshot, StoreError>
        do {
            result = try store.requestSnapshot(engine: engine, format: job.format, label: label, source: "trigger file \(job.format.rawValue)").1
        } catch {
            throw .invalid(error.description)
        }
        switch result {
        case .success(let s):
            logger.info("trigger complete", metadata: ["snapshot": .string(s.name)])
            refresh()
        case .failure(let e):
            logger.error("trigger failed", metadata: ["format": .string(job.format.rawValue), "error": .string(e.description)])
            throw .io(e.description)
        }
    }

    // MARK: extended attributes

    public func listxattr(_ ino: UInt64) throws(FSError) -> [String] {
        switch try node(ino) {
        case .snapshot: return SnapshotXattrs.names
        case .file(_, let e): return e.sha256 == nil ? ["user.snapfs.object"] : ["user.snapfs.object", "user.snapfs.sha256"]
        default: return []
        }
    }

    public func getxattr(_ ino: UInt64, name: String) throws(FSError) -> [UInt8] {
        switch try node(ino) {
        case .snapshot(let id):
            guard let snapName = snapshotName(id) else { throw .notFound }
            let report: SnapshotReport
            do { report = try store.report(snapName) } catch { throw .store(error) }
            guard let v = SnapshotXattrs.value(name, report) else { throw .noAttribute }
            return Array(v.utf8)
        case .file(_, let e):
            if name == "user.snapfs.object", let p = e.objectPath { return Array(p.utf8) }
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
