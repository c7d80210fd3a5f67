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
    /// Where reads get descriptors of stored objects: the store's directory, or a source given at `init`.
    let objects: any ObjectSource
    /// How each snapshot is shown, when its engine has a layout of its own (see `setPresenter`).
    let views = SnapshotViews()
    /// Set by the kernel adapter: drops the kernel's cached attributes and listings of these inodes now.
    let kernelNotifier = Mutex<(@Sendable ([UInt64]) -> Void)?>(nil)
    /// Set by the daemon for engines that run jobs: see `setJobStatus`.
    let jobStatusProvider = Mutex<(@Sendable (String) throws(StoreError) -> [UInt8])?>(nil)
    /// Set by the daemon for engines whose jobs take intents: see `setJobIntents`.
    let jobIntentHandlers = Mutex<JobIntentHandlers?>(nil)
    /// The time shown for the mount's own entries (`latest`, `.snapfs`), which have none of their own.
    let mountedAtNanos: Int64
    /// Shown for snapshots that recorded no root of their own (taken before that was recorded, or by an engine
    /// without one): the store directory's mode and owner, which guarded their files on disk.
    let storeRootOwnership: RootOwnership

    /// A snapshot of the catalog's root listing, refreshed when the catalog's generation or the engine's job status
    /// (`Store.statusGeneration`) moves.
    struct Listing {
        var generation: Int64 = -1
        /// The engine's status generation the listing's `latest`, `protected` and `jobs` were read under.
        var statusGeneration: Int64 = -1
        var byName: [String: Snapshot] = [:]
        var byID: [SnapshotID: Snapshot] = [:]
        /// Names in catalog order (oldest first).
        var names: [String] = []
        var latest: String?
        /// Every job's protected recovery point when the listing was read.
        var protected: Set<String> = []
        /// The `by-job/` tree, by job id; nil on stores whose engine has no jobs (no `by-job/` at all).
        var jobs: [String: JobView]?
        /// When the root's entries last changed: its modification time, which tells the kernel to drop its
        /// cached listing.
        var changedAt: Int64 = 0
    }

    struct State {
        var listing = Listing()
        var indexes: [SnapshotID: SnapshotIndex] = [:]
        var inodes = InodeTable()
        var staging = StagingArea()
        var generated = GeneratedContent()
        /// Listings being paged through by `readdir`, by directory inode.
        var listings: [UInt64: [DirEntry]] = [:]
        /// Refusals written to the event log in the last few seconds, by their full text: an identical one within
        /// the window is counted instead of written again, and the count follows as an event of its own.
        var recentRefusals: [String: RefusalRun] = [:]
        /// Root names and inodes the kernel must be told to forget at the next poll.
        var pendingChanges: Set<String> = []
        var pendingInodes: Set<UInt64> = []
        /// Directories whose cached listing the kernel must drop at the next poll.
        var pendingDirectories: Set<UInt64> = []
        /// Names in `by-job/` the kernel must forget at the next poll.
        var pendingEntries: Set<ChangedEntry> = []
        /// The catalog generation and time of the last root listing handed to a reader (see `announceListingChanges`).
        var rootListingServed: (generation: Int64, at: Date) = (-1, .distantPast)
    }

    /// `objects` is where stored objects are read from; by default the store's own directory.
    public init(store: Store, engine: any SnapshotEngine, options: FileOpsOptions = FileOpsOptions(),
                clock: @escaping @Sendable () -> Date = { Date() }, objects: (any ObjectSource)? = nil) {
        self.store = store
        self.engine = engine
        self.options = options
        self.now = clock
        self.state = Mutex(State())
        self.objects = objects ?? ObjectDescriptors(root: store.root.path)
        self.mountedAtNanos = Int64(clock().timeIntervalSince1970 * 1e9)
        self.storeRootOwnership = RootOwnership.of(directory: store.root.path) ?? RootOwnership(mode: 0o700, uid: options.uid, gid: options.gid)
    }

    /// Installs what `.snapfs/jobs/<job>/status` holds, for an engine that runs jobs (Flink): without one, as for the
    /// local engine, there is no `jobs/` directory. The document is the engine's (`snapfs job status --json`).
    public func setJobStatus(_ provider: @escaping @Sendable (String) throws(StoreError) -> [UInt8]) {
        jobStatusProvider.withLock { $0 = provider }
    }

    /// Installs what the writable files of `.snapfs/jobs/<job>/` do (see `JobIntentHandlers`).
    public func setJobIntents(_ handlers: JobIntentHandlers) {
        jobIntentHandlers.withLock { $0 = handlers }
    }

    var jobIntents: JobIntentHandlers? { jobIntentHandlers.withLock { $0 } }

    /// The engine's job status, when it has jobs.
    var jobStatus: (@Sendable (String) throws(StoreError) -> [UInt8])? { jobStatusProvider.withLock { $0 } }

    /// The jobs listed in `.snapfs/jobs/`: every job the store's rules know of (those with snapshots here).
    func jobNames() -> [String] {
        guard jobStatus != nil else { return [] }
        return store.jobStatus().jobs.map(\.job).sorted()
    }

    /// Installs how to tell the kernel to drop cached attributes and listings at once (the adapter's
    /// `notify_inval_inode`); without one, as in tests, the kernel-side caches are simply not there.
    public func setKernelNotifier(_ notify: @escaping @Sendable ([UInt64]) -> Void) {
        kernelNotifier.withLock { $0 = notify }
    }

    /// Tells the kernel now, rather than at the next poll, that the root changed: for requests made through the
    /// mount itself, whose caller lists the result as soon as its command returns. (`requests/` and `snapshots/`
    /// need no telling: their attributes are never cached, so every listing checks their modification time.)
    ///
    /// Once is not always enough. The kernel fills its cache of a listing from a reply when the reader that asked
    /// for it runs again, and checks only that nobody reset the cache in between: a reader whose listing was read
    /// just before the change can put it in the cache after this invalidation, under the modification time a newer
    /// reader has meanwhile seen, and `ls` then shows the old root until the next change. So when a listing older
    /// than the change was handed out a moment ago, the cache is dropped once more after such a reader has run.
    func announceListingChanges() {
        refresh()
        let notify = kernelNotifier.withLock { $0 }
        // `by-job/` and each job's directory list the new snapshot too.
        let jobs = state.withLock { $0.listing.jobs.map { [InodeNumber.jobs] + $0.keys.map(InodeNumber.job) } } ?? []
        notify?([InodeNumber.root] + jobs)
        guard let notify else { return }
        let t = now()
        let staleServed = state.withLock { s in
            s.rootListingServed.generation < s.listing.generation && t.timeIntervalSince(s.rootListingServed.at) < Self.staleListingWindow
        }
        if staleServed {
            usleep(UInt32(Self.staleListingWindow * 1e6 / 10))
            notify([InodeNumber.root])
        }
    }

    /// How long after handing out a listing a reader may still be filling the kernel's cache with it: a reader on a
    /// loaded machine waits a few scheduler periods before it runs again.
    static let staleListingWindow: TimeInterval = 0.5

    /// The mount root's permission bits: who may write it may delete and move snapshots (the kernel checks, with
    /// `default_permissions`), and may set and release holds (checked here, see `mayChangeSnapshots`).
    static let rootMode: UInt32 = 0o755

    /// Whether `caller` may change which snapshots exist, as the kernel decides for `rmdir` and `rename` in the
    /// root: root may, and otherwise the root's owner, group or others, as its mode bits allow.
    func mayChangeSnapshots(_ caller: Caller) -> Bool {
        if caller.uid == 0 { return true }
        if caller.uid == options.uid { return Self.rootMode & 0o300 == 0o300 }
        if caller.gid == options.gid { return Self.rootMode & 0o030 == 0o030 }
        return Self.rootMode & 0o003 == 0o003
    }

    var nowNanos: Int64 { Int64(now().timeIntervalSince1970 * 1e9) }

    // MARK: catalog view

    /// Rereads the root listing if the catalog or the engine's job status changed (a job cancelled, a JobManager
    /// gone quiet: each job's `latest` may point elsewhere with no catalog change); returns the root names whose
    /// meaning changed.
    @discardableResult
    public func refresh() -> RootChanges {
        let gen = store.generation()
        let statusGen = store.statusGeneration()
        let (seen, seenStatus) = state.withLock { ($0.listing.generation, $0.listing.statusGeneration) }
        if (seen, seenStatus) == (gen, statusGen) { return RootChanges(names: []) }
        // Snapshots whose files an engine rewrote in place (a repaired Flink `_metadata`): indexed anew. Only the
        // engine's status moved: the catalog, and so every snapshot's files, did not.
        let rewritten = seen < 0 || seen == gen ? [] : store.entriesReplaced(after: seen)
        let snaps: [Snapshot]
        do { snaps = try store.snapshots() } catch {
            logger.error("cannot read the catalog: \(error)")
            return RootChanges(names: [])
        }
        let job = store.jobStatus()
        var l = Listing()
        l.generation = gen
        l.statusGeneration = statusGen
        for s in snaps { l.byName[s.name] = s; l.byID[s.id] = s; l.names.append(s.name) }
        l.latest = job.recoveryPoint.flatMap { l.byName[$0] != nil ? $0 : nil }
            ?? snaps.max { ($0.completedAt ?? 0, $0.id) < ($1.completedAt ?? 0, $1.id) }?.name
        l.protected = job.protectedNames
        l.jobs = engine.groupsSnapshotsByJob ? JobViews.build(snaps, status: job) : nil
        return state.withLock { s -> RootChanges in
            let old = s.listing
            var changed: Set<String> = []
            for (name, snap) in old.byName where l.byName[name]?.id != snap.id { changed.insert(name) }
            for (name, snap) in l.byName where old.byName[name]?.id != snap.id { changed.insert(name) }
            if old.latest != l.latest { changed.insert("latest") }
            let jobChanges = JobViews.changes(from: old.jobs, to: l.jobs)
            let same = changed.isEmpty && jobChanges.entries.isEmpty && jobChanges.directories.isEmpty
            l.changedAt = same && old.generation >= 0 ? old.changedAt : max(nowNanos, old.changedAt + 1)
            var inodes: Set<UInt64> = []
            if Set(old.byID.keys) != Set(l.byID.keys) {
                inodes = Self.forgetLinkCounts(&s)
                for id in s.staging.bySnapshot.keys where l.byID[id] == nil { s.staging.clear(id) }
                views.keep(only: Set(l.byID.keys))
            }
            // A snapshot whose directory moved (with its files), or whose entries were replaced, is indexed anew,
            // and shown anew (a repaired Flink snapshot's generated `_metadata` changes with it).
            for (id, snap) in l.byID where old.byID[id].map({ $0.directory != snap.directory }) ?? false
                || rewritten.map({ $0.contains(id) }) ?? true {
                let generated = views.forget(id)
                inodes.formUnion(generated)
                if let idx = s.indexes.removeValue(forKey: id) {
                    for e in idx.entries.values where e.type == .file { inodes.insert(Node.file(id, e).ino) }
                    // The kernel's listings of its directories, and its name at the root, are dropped too.
                    s.pendingDirectories.insert(InodeNumber.snapshotRoot(id))
                    for e in idx.entries.values where e.type == .directory { s.pendingDirectories.insert(InodeNumber.directory(id, e.path)) }
                    changed.insert(snap.name)
                } else if !generated.isEmpty {
                    s.pendingDirectories.insert(InodeNumber.snapshotRoot(id))
                    changed.insert(snap.name)
                }
            }
            s.pendingInodes.formUnion(inodes)
            // Two refreshes racing: the one that read the catalog first must not replace what the later one stored.
            if (s.listing.generation, s.listing.statusGeneration) > (l.generation, l.statusGeneration) { return RootChanges(names: []) }
            s.listing = l
            // A refresh made inside a request (after a delete or a trigger) must not swallow what the kernel has to
            // forget: the poller hands it over.
            s.pendingChanges.formUnion(changed)
            s.pendingEntries.formUnion(jobChanges.entries)
            s.pendingDirectories.formUnion(jobChanges.directories)
            return RootChanges(names: changed.sorted(), inodes: Array(inodes), directories: Array(jobChanges.directories),
                               entries: Array(jobChanges.entries))
        }
    }

    /// Link counts of shared objects moved because the set of snapshots did, and indexes of gone snapshots are
    /// garbage. Every object inode the kernel can hold attributes for came from a cached index, so invalidating
    /// theirs (at the next poll) is enough.
    private static func forgetLinkCounts(_ s: inout State) -> Set<UInt64> {
        var inodes: Set<UInt64> = []
        for idx in s.indexes.values {
            for e in idx.entries.values where e.type == .file { if let i = InodeNumber.file(e) { inodes.insert(i) } }
        }
        s.indexes.removeAll()
        s.pendingInodes.formUnion(inodes)
        return inodes
    }

    /// A change this mount made to the catalog itself.
    enum OwnChange {
        case moved(from: String, to: String)
        case deleted(String)
    }

    /// Applies a move or delete this mount has just made to its listing in place, when the catalog's generation
    /// shows it was the only change since the listing was read; otherwise rereads the catalog. A reread costs time
    /// in proportion to the number of snapshots, which the move or delete of one snapshot should not.
    func refresh(afterOwn change: OwnChange, since before: Int64) {
        let gen = store.generation()
        let t = nowNanos
        let applied = state.withLock { s -> Bool in
            guard before >= 0, s.listing.generation == before, gen == before + 1 else { return false }
            switch change {
            case .moved(let from, let to):
                guard var snap = s.listing.byName[from], s.listing.byName[to] == nil,
                      let i = s.listing.names.firstIndex(of: from) else { return false }
                // `by-job/` names come from directories, which a move leaves where they are; a snapshot without
                // one is shown there under its catalog name, so rebuild from the catalog.
                if snap.job != nil, s.listing.jobs != nil, snap.directory == nil { return false }
                // An engine may move a snapshot's directory with it (a self-contained Flink savepoint): its
                // directory, entries and `by-job/` name come from the catalog again.
                if snap.directory != nil { return false }
                snap.name = to
                s.listing.byName[from] = nil
                s.listing.byName[to] = snap
                s.listing.byID[snap.id] = snap
                s.listing.names[i] = to
                s.pendingChanges.formUnion([from, to])
                if s.listing.latest == from { s.listing.latest = to; s.pendingChanges.insert("latest") }
                if s.listing.protected.remove(from) != nil { s.listing.protected.insert(to) }
            case .deleted(let name):
                // Which snapshot is `latest` after the recovery point or the newest goes is the engine's answer.
                guard let snap = s.listing.byName[name], name != s.listing.latest, !s.listing.protected.contains(name),
                      let i = s.listing.names.firstIndex(of: name) else { return false }
                if let job = snap.job, var view = s.listing.jobs?[job] {
                    guard let shown = view.byName.first(where: { $0.value == snap.id })?.key else { return false }
                    // So is each job's `latest`.
                    if view.latest == shown { return false }
                    view.byName[shown] = nil
                    view.names.removeAll { $0 == shown }
                    s.listing.jobs?[job] = view.names.isEmpty ? nil : view
                    s.pendingEntries.insert(ChangedEntry(parent: InodeNumber.job(job), name: shown))
                    s.pendingDirectories.insert(InodeNumber.job(job))
                    if view.names.isEmpty {
                        s.pendingEntries.insert(ChangedEntry(parent: InodeNumber.jobs, name: job))
                        s.pendingDirectories.insert(InodeNumber.jobs)
                    }
                }
                s.listing.byName[name] = nil
                s.listing.byID[snap.id] = nil
                s.listing.names.remove(at: i)
                s.staging.clear(snap.id)
                _ = views.forget(snap.id)
                s.pendingChanges.insert(name)
                _ = Self.forgetLinkCounts(&s)
            }
            s.listing.generation = gen
            s.listing.changedAt = max(t, s.listing.changedAt + 1)
            return true
        }
        if !applied { refresh() }
    }

    /// Called by the adapter's poller: every catalog change since the last poll, whoever noticed it, plus staging
    /// windows that ran out.
    public func poll() -> RootChanges {
        refresh()
        expireStaging()
        flushRefusals()
        // A delete by another process (the command line, retention) unlinks objects this mount may hold open.
        objects.closeRemoved()
        return state.withLock { s in
            defer {
                s.pendingChanges.removeAll(); s.pendingInodes.removeAll(); s.pendingDirectories.removeAll(); s.pendingEntries.removeAll()
            }
            return RootChanges(names: s.pendingChanges.sorted(), inodes: Array(s.pendingInodes), directories: Array(s.pendingDirectories),
                               entries: Array(s.pendingEntries))
        }
    }

    func expireStaging() {
        let restored = state.withLock { s -> [(SnapshotID, Set<String>)] in
            let back = s.staging.expire(now: now(), window: options.stageWindow)
            // The kernel may hold listings of the directories these entries come back to (`cache_readdir`).
            for (id, paths) in back {
                let viewed = s.listing.jobs != nil && s.listing.byID[id]?.job != nil
                for p in paths {
                    let (parent, name) = SnapshotIndex.split(p)
                    let flat = parent.isEmpty ? InodeNumber.snapshotRoot(id) : InodeNumber.directory(id, parent)
                    s.pendingDirectories.insert(flat)
                    // A lookup made while the entry was hidden left the kernel a miss it may keep for as long as
                    // names in a snapshot (`missTimeout`): it must forget that miss.
                    s.pendingEntries.insert(ChangedEntry(parent: flat, name: name))
                    // The same directory as seen through `by-job/`, which the kernel caches under its own handle.
                    if viewed {
                        s.pendingDirectories.insert(InodeNumber.jobView(flat))
                        s.pendingEntries.insert(ChangedEntry(parent: InodeNumber.jobView(flat), name: name))
                    }
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
        let idx = SnapshotIndex(id: id, entries: try shownEntries(id))
        state.withLock { $0.indexes[id] = idx }
        return idx
    }

    func isLive(_ id: SnapshotID) -> Bool { state.withLock { $0.listing.byID[id] != nil } }

    func node(_ ino: UInt64) throws(FSError) -> Node {
        guard let n = state.withLock({ $0.inodes.node(ino) }) else { throw .notFound }
        return n
    }

    func register(_ n: Node) -> UInt64 { state.withLock { $0.inodes.register(n) } }

    /// The kernel dropped `count` references to `ino` (FORGET): see `InodeTable`.
    public func forget(_ ino: UInt64, count: UInt64) {
        state.withLock { $0.inodes.forget(ino, count) }
    }

    /// BATCH_FORGET: many inodes at once, under one lock.
    public func forget(_ batch: [(ino: UInt64, count: UInt64)]) {
        state.withLock { s in for f in batch { s.inodes.forget(f.ino, f.count) } }
    }

    /// Nodes held for the kernel now, shown in `.snapfs/status` as `nodes`.
    public var nodeCount: Int { state.withLock { $0.inodes.count } }

    /// How many entry replies naming `ino` the kernel has not forgotten.
    public func lookupCount(_ ino: UInt64) -> UInt64 { state.withLock { $0.inodes.lookups(ino) } }

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
            return dirAttr(ino, mode: Self.rootMode, nlink: 3 + l.names.count + (l.jobs == nil ? 0 : 1), mtime: l.changedAt)
        case .jobs, .job, .jobLatest:
            return try jobAttr(n)
        case .jobView(let flat):
            // The flat node's attributes, inode number included.
            return try attr(flat)
        case .latest:
            let target = state.withLock { $0.listing.latest } ?? ""
            return Attr(ino: ino, mode: 0o120777, nlink: 1, size: Int64(target.utf8.count), blocks: 0, mtimeNanos: mountedAtNanos,
                        uid: options.uid, gid: options.gid)
        case .controlDir(let d):
            let mtime: Int64
            switch d {
            case .top, .trigger, .jobs, .job: mtime = mountedAtNanos
            case .snapshots: mtime = listing().changedAt
            case .requests:
                let names = try requestSeqs().map(String.init), t = nowNanos
                mtime = state.withLock { $0.generated.listingTime(ino, names: names, now: t) }
            }
            let nlink: Int
            switch d {
            case .top: nlink = jobStatus == nil ? 5 : 6
            case .jobs: nlink = 2 + jobNames().count
            default: nlink = 2
            }
            return dirAttr(ino, mode: 0o555, nlink: nlink, mtime: mtime)
        case .controlFile(let f):
            let v = try generated(f, ino)
            let size = v.bytes.count
            let mode: UInt32
            if case .jobControl = f { mode = 0o100644 } else { mode = 0o100444 }
            return Attr(ino: ino, mode: mode, nlink: 1, size: Int64(size), blocks: Int64((size + 511) / 512),
                        mtimeNanos: v.changedAt, uid: options.uid, gid: options.gid)
        case .trigger:
            return Attr(ino: ino, mode: 0o100600, nlink: 1, size: 0, blocks: 0, mtimeNanos: mountedAtNanos, uid: options.uid, gid: options.gid)
        case .snapshot(let id):
            let snap = state.withLock { $0.listing.byID[id] }
            guard let snap else { throw .notFound }
            let idx = try index(id)
            // As its source's root was when it was taken: with `allow_other` and the kernel checking permissions
            // (`default_permissions`), that is what keeps other users out of a snapshot of a private state directory.
            let root = snap.root ?? storeRootOwnership
            var a = dirAttr(ino, mode: root.mode, nlink: 2 + idx.subdirectoryCount(""), mtime: root.mtimeNanos ?? Int64(snap.createdAt * 1e9))
            a.uid = root.uid; a.gid = root.gid
            return a
        case .directory(let id, let p):
            let idx = try index(id)
            guard let e = idx.entries[p] else { throw .notFound }
            var a = dirAttr(ino, mode: e.mode, nlink: 2 + idx.subdirectoryCount(p), mtime: e.mtimeNanos)
            (a.uid, a.gid) = owner(e)
            return a
        case .file(let id, let held):
            // Link counts move as snapshots come and go; the rest of a stored file never changes, except the length
            // of one whose rule lets it be longer than the snapshot needs (a file other snapshots keep appending
            // to): its length and time are the file's own, so a copy through the mount holds every byte it has.
            let e = (isLive(id) ? (try? index(id))?.entries[held.path] : nil) ?? held
            if e.type == .fifo || e.type == .device {
                // As mknod made them: the type bits and device number are the entry's own; no content.
                return Attr(ino: ino, mode: e.mode, nlink: 1, size: 0, blocks: 0, mtimeNanos: e.mtimeNanos,
                            uid: owner(e).uid, gid: owner(e).gid, rdev: e.rdev ?? 0)
            }
            var size = e.size, mtime = e.mtimeNanos
            if e.sizeRule == .atLeast, let now = try? currentLength(e) { (size, mtime) = now }
            return Attr(ino: ino, mode: 0o100000 | (e.mode & 0o7777), nlink: UInt32(max(1, e.links)), size: size,
                        blocks: e.sizeRule == .exact ? (e.blocks ?? (size + 511) / 512) : (size + 511) / 512,
                        mtimeNanos: mtime, uid: owner(e).uid, gid: owner(e).gid)
        case .symlink(let id, let p):
            guard let e = try index(id).entries[p] else { throw .notFound }
            return Attr(ino: ino, mode: 0o120000 | (e.mode & 0o7777), nlink: 1, size: Int64(PathBytes.kernel(e.symlinkTarget ?? "").count),
                        blocks: 0, mtimeNanos: e.mtimeNanos, uid: owner(e).uid, gid: owner(e).gid)
        }
    }

    /// Who owns an entry in the mount: its recorded owner, or the daemon's user when none was recorded.
    func owner(_ e: SnapshotEntry) -> (uid: UInt32, gid: UInt32) { (e.uid ?? options.uid, e.gid ?? options.gid) }

    /// The length and modification time a stored file has now.
    private func currentLength(_ e: SnapshotEntry) throws(FSError) -> (Int64, Int64)? {
        guard let rel = e.objectPath else { return nil }
        return try objects.withDescriptor(rel, covering: 0..<0) { fd throws(FSError) -> (Int64, Int64)? in
            var st = stat()
            guard fstat(fd, &st) == 0 else { return nil }
            return (Int64(st.st_size), Int64(st.st_mtim.tv_sec) * 1_000_000_000 + Int64(st.st_mtim.tv_nsec))
        }
    }

    /// The reply naming `n`, counted as one more reference the kernel holds (see `InodeTable`): call it only for an
    /// entry about to be sent. Attributes come first, so a failure counts nothing.
    func entry(_ n: Node) throws(FSError) -> Entry {
        let a = try attr(n)
        _ = register(n)
        let t = timeouts(n)
        return Entry(attr: a, entryTimeout: t.entry, attrTimeout: t.attr, nodeID: n.ino)
    }

    /// How long the kernel may trust a node's name and attributes.
    /// - Inside snapshots: long. Names and content never change; link counts that move are invalidated inode by
    ///   inode by the poller.
    /// - Generated files and the generated directories `requests/` and `snapshots/`: not at all. Each read and
    ///   each listing starts with a `stat`, whose modification time tells the kernel whether its cached pages or
    ///   listing still hold. They are never on the way to a snapshot file, so this costs no read path anything.
    /// - Files whose length may grow (rule `atLeast`): a second, like the root.
    /// - Trigger files: not at all, so that every open sees size 0 and an appending write still starts at 0.
    /// - Snapshot names at the root: long as well. What a name stands for changes only by a move, delete or new
    ///   snapshot; through the mount the kernel sees those itself, and the poller tells it of the others within a
    ///   quarter second. A snapshot directory's own attributes never change.
    /// - The root and the rest: a second. Every path crosses the root, so its attributes must stay cached; the
    ///   poller and the mount's own requests invalidate it when snapshots come and go.
    func timeouts(_ n: Node) -> (entry: Double, attr: Double) {
        switch n {
        case .jobView(let flat):
            return timeouts(flat)
        case .jobs, .job, .jobLatest:
            // Their listings and `latest` move with every new snapshot of a job: each listing and each `readlink`
            // starts from current attributes, as in `.snapfs/snapshots`. Names in them are forgotten by the poller.
            return (options.controlTimeout, 0)
        case .file(_, let e) where e.sizeRule == .atLeast:
            // Its length may still grow; each `stat` a second apart sees it, and a changed length or time makes
            // the kernel drop the pages it holds.
            return (options.snapshotEntryTimeout, options.controlTimeout)
        case .snapshot, .directory, .file, .symlink:
            return (options.snapshotEntryTimeout, options.snapshotAttrTimeout)
        case .controlFile, .controlDir(.requests), .controlDir(.snapshots), .controlDir(.jobs):
            return (options.controlTimeout, 0)
        case .trigger:
            return (0, 0)
        case .root, .latest, .controlDir:
            return (options.controlTimeout, options.controlTimeout)
        }
    }
}
