import Foundation
import Logging
import SnapStore
#if canImport(Glibc)
import Glibc
#endif

/// Finding and listing: the root of snapshots, each snapshot's tree, `latest` and the control directory.
extension SnapFileSystem {
    /// The node a name stands for in a directory, or nil.
    func child(of parent: Node, _ name: String) throws(FSError) -> Node? {
        switch parent {
        case .root:
            // The poller keeps the listing current; a name it does not know yet may be a snapshot made a moment
            // ago by the command line, so only a miss rereads the catalog. `ls -l` of a large root stays cheap.
            var l = state.withLock { $0.listing }
            if l.generation < 0 || (l.byName[name] == nil && name != ".snapfs" && name != Self.jobsName) { l = listing() }
            if name == "latest" { return l.latest == nil ? nil : .latest }
            if name == ".snapfs" { return .controlDir(.top) }
            if name == Self.jobsName { return l.jobs == nil ? nil : .jobs }
            return l.byName[name].map { .snapshot($0.id) }
        case .controlDir(.top):
            switch name {
            case "trigger": return .controlDir(.trigger)
            case "requests": return .controlDir(.requests)
            case "snapshots": return .controlDir(.snapshots)
            case "formats": return .controlFile(.formats)
            case "status": return .controlFile(.status)
            case "events": return .controlFile(.events)
            case "jobs": return jobStatus == nil ? nil : .controlDir(.jobs)
            default: return nil
            }
        case .controlDir(.jobs):
            return jobNames().contains(name) ? .controlDir(.job(name)) : nil
        case .controlDir(.job(let job)):
            guard jobNames().contains(job) else { return nil }
            if name == "status" { return .controlFile(.jobStatus(job)) }
            guard jobIntents != nil, let f = JobControlFile(rawValue: name) else { return nil }
            return .controlFile(.jobControl(job, f))
        case .controlDir(.trigger):
            return TriggerFormat(rawValue: name).map { .trigger($0) }
        case .controlDir(.requests):
            guard name.hasSuffix(".json"), let seq = Int64(name.dropLast(5)), store.request(seq) != nil else { return nil }
            return .controlFile(.request(seq))
        case .controlDir(.snapshots):
            guard name.hasSuffix(".json") else { return nil }
            let n = String(name.dropLast(5))
            return listing().byName[n] == nil ? nil : .controlFile(.report(n))
        case .jobs, .job:
            return jobChild(of: parent, name)
        case .jobView(let flat):
            // The same entry as at the root; directories keep a handle of their own in this view.
            guard let c = try child(of: flat, name) else { return nil }
            return c.isSnapshotDirectory ? .jobView(c) : c
        case .snapshot(let id), .directory(let id, _):
            guard isLive(id) else { throw .notFound }
            let dir = parent.snapshotLocation!.1
            let path = SnapshotIndex.join(dir, name)
            guard let e = try index(id).entries[path] else { return nil }
            expireStaging()
            if state.withLock({ $0.staging.hides(id, path) }) { return nil }
            switch e.type {
            case .directory: return .directory(id, path)
            case .file, .fifo, .device: return .file(id, e)
            case .symlink: return .symlink(id, path)
            }
        default:
            throw .notDirectory
        }
    }

    /// A lookup that must find the name: a miss is `notFound`.
    public func lookup(parent: UInt64, name: String) throws(FSError) -> Entry {
        switch try resolve(parent: parent, name: name) {
        case .found(let e): return e
        case .missing: throw .notFound
        }
    }

    /// The kernel's LOOKUP: an entry, counted as one more reference the kernel holds, or a miss with how long the
    /// kernel may remember it. `..` is the directory's parent (the kernel asks for it only when it has lost the
    /// parent's dentry, as when the mount is exported).
    public func resolve(parent: UInt64, name: String) throws(FSError) -> LookupResult {
        let p = try node(parent)
        if name == ".." { return .found(try entry(try parentNode(of: p))) }
        guard let n = try child(of: p, name) else { return .missing(timeout: missTimeout(in: p)) }
        return .found(try entry(n))
    }

    /// How long the kernel may remember that a name is not in `dir`. Inside a snapshot, names never change, so a
    /// miss stays a miss, and a repeated `stat` of a name that is not there (a build probing for headers, a shell
    /// searching for a command) costs no round trip. The one exception, an entry hidden by a staged unlink that
    /// comes back when its window runs out, is announced to the kernel by the poller (`expireStaging`).
    /// Elsewhere (the root, `by-job/`, `.snapfs/`) a name may appear at any moment: a miss is not kept.
    func missTimeout(in dir: Node) -> Double {
        switch dir.flat {
        case .snapshot, .directory: return options.snapshotEntryTimeout
        default: return 0
        }
    }

    /// The directory that holds `dir`, in the same view: a directory reached through `by-job/` has its parent
    /// there too, up to the job's directory.
    func parentNode(of dir: Node) throws(FSError) -> Node {
        switch dir {
        case .root, .jobs, .controlDir(.top), .snapshot:
            return .root
        case .job:
            return .jobs
        case .controlDir:
            return .controlDir(.top)
        case .directory(let id, let p):
            let up = SnapshotIndex.split(p).parent
            return up.isEmpty ? .snapshot(id) : .directory(id, up)
        case .jobView(.snapshot(let id)):
            guard let job = state.withLock({ $0.listing.byID[id]?.job }) else { throw .notFound }
            return .job(job)
        case .jobView(let flat):
            return .jobView(try parentNode(of: flat))
        default:
            throw .notDirectory
        }
    }

    public func getattr(_ ino: UInt64) throws(FSError) -> Attr { try attributes(ino).attr }

    /// Attributes and how long the kernel may keep them (see `timeouts`).
    public func attributes(_ ino: UInt64) throws(FSError) -> (attr: Attr, timeout: Double) {
        let n = try node(ino)
        switch n {
        case .root, .jobs, .job: refresh()
        default: break
        }
        return (try attr(n), timeouts(n).attr)
    }

    /// Whether the kernel may keep `ino`'s listing across opens, for kernels that still send OPENDIR: directories
    /// inside snapshots never change, except for staged unlinks, which the kernel sees itself, and their return
    /// after the window, which the poller announces. (Kernels that skip OPENDIR keep every listing and check the
    /// directory's modification time first, which moves whenever a generated listing does.)
    public func listingIsCacheable(_ ino: UInt64) -> Bool {
        switch try? node(ino) {
        case .snapshot?, .directory?, .jobView?: return true
        default: return false
        }
    }

    /// Entries from `offset` on (offset = how many the caller has already consumed). A listing is built when a
    /// reader starts at 0 and kept while it pages through, so a directory of N entries costs O(N), not O(N²).
    public func readdir(_ ino: UInt64, offset: Int) throws(FSError) -> ArraySlice<DirEntry> {
        var list = offset == 0 ? nil : state.withLock { $0.listings[ino] }
        if list == nil {
            let built = try directoryEntries(ino)
            state.withLock { s in
                // Readers that stop half way leave theirs behind; a bound keeps that from growing.
                if s.listings.count >= 256 { s.listings.removeAll(keepingCapacity: true) }
                s.listings[ino] = built
            }
            list = built
        }
        guard let list, offset < list.count else {
            _ = state.withLock { $0.listings.removeValue(forKey: ino) }
            return []
        }
        return list[offset...]
    }

    func directoryEntries(_ ino: UInt64) throws(FSError) -> [DirEntry] {
        let n = try node(ino)
        // `..` as `stat` shows the parent: through `by-job/`, a directory's flat inode number.
        let up = (try? parentNode(of: n))?.flat.ino ?? InodeNumber.root
        var out = [DirEntry(name: ".", ino: n.flat.ino, mode: 0o040000), DirEntry(name: "..", ino: up, mode: 0o040000)]
        // Nothing is registered here: a plain READDIR gives the kernel names and numbers only, and it looks each
        // name up before it uses it, so registering would hold a node per entry the kernel never forgets.
        func add(_ name: String, _ c: Node, _ mode: UInt32) {
            out.append(DirEntry(name: name, ino: c.ino, mode: mode))
        }
        switch n.flat {
        case .root:
            let l = listing()
            let t = now()
            state.withLock { $0.rootListingServed = (l.generation, t) }
            for name in l.names { add(name, .snapshot(l.byName[name]!.id), 0o040000) }
            if l.latest != nil { add("latest", .latest, 0o120000) }
            if l.jobs != nil { add(Self.jobsName, .jobs, 0o040000) }
            add(".snapfs", .controlDir(.top), 0o040000)
        case .jobs, .job:
            for (name, c, mode) in try jobEntries(n) {
                out.append(DirEntry(name: name, ino: c.flat.ino, mode: mode))
            }
        case .controlDir(.top):
            add("trigger", .controlDir(.trigger), 0o040000)
            add("requests", .controlDir(.requests), 0o040000)
            add("snapshots", .controlDir(.snapshots), 0o040000)
            add("formats", .controlFile(.formats), 0o100000)
            add("status", .controlFile(.status), 0o100000)
            add("events", .controlFile(.events), 0o100000)
            if jobStatus != nil { add("jobs", .controlDir(.jobs), 0o040000) }
        case .controlDir(.jobs):
            for j in jobNames() { add(j, .controlDir(.job(j)), 0o040000) }
        case .controlDir(.job(let job)):
            add("status", .controlFile(.jobStatus(job)), 0o100000)
            if jobIntents != nil {
                for f in JobControlFile.allCases { add(f.rawValue, .controlFile(.jobControl(job, f)), 0o100000) }
            }
        case .controlDir(.trigger):
            for f in TriggerFormat.allCases { add(f.rawValue, .trigger(f), 0o100000) }
        case .controlDir(.requests):
            for seq in try requestSeqs() { add("\(seq).json", .controlFile(.request(seq)), 0o100000) }
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
                case .fifo, .device: add(name, .file(id, e), e.mode & 0o170000)
                case .symlink: add(name, .symlink(id, path), 0o120000)
                }
            }
        default:
            throw .notDirectory
        }
        return out
    }

    /// The requests listed in `.snapfs/requests`, oldest first.
    func requestSeqs() throws(FSError) -> [Int64] {
        do { return try store.requests().map(\.seq) } catch { throw .store(error) }
    }

    public func readlink(_ ino: UInt64) throws(FSError) -> String {
        switch try node(ino) {
        case .latest:
            guard let t = listing().latest else { throw .notFound }
            return t
        case .jobLatest(let j):
            return try jobLatestTarget(j)
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
}
