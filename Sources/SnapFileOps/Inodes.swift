import Foundation
import SnapStore
#if canImport(Glibc)
import Glibc
#endif

/// Inode numbers are hashes of what a node *is*, never a counter, so `stat -c %i` gives the same number after a
/// remount and a stored object shared by several snapshots is one inode wherever it appears.
public enum InodeNumber {
    public static let root: UInt64 = 1
    public static let control: UInt64 = 2
    public static let triggerDir: UInt64 = 3
    public static let requestsDir: UInt64 = 4
    public static let snapshotsDir: UInt64 = 5
    public static let formats: UInt64 = 6
    public static let status: UInt64 = 7
    public static let events: UInt64 = 8
    public static let latest: UInt64 = 9
    /// `by-job/`, on stores whose engine groups snapshots by job.
    public static let jobs: UInt64 = 10
    /// `.snapfs/jobs/`, each job's status, on the same stores.
    public static let jobsDir: UInt64 = 11
    /// Trigger files take 16 + their index in `TriggerFormat.allCases`.
    public static func trigger(_ f: TriggerFormat) -> UInt64 { 16 + UInt64(TriggerFormat.allCases.firstIndex(of: f)!) }
    /// Below this only the fixed numbers above live; hashes are moved out of the way.
    static let firstHashed: UInt64 = 1 << 16

    /// FNV-1a, 64 bits: tiny, stable across builds and platforms (unlike `Hasher`, which is seeded per process).
    public static func hash(_ identity: String) -> UInt64 {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for b in identity.utf8 {
            h ^= UInt64(b)
            h = h &* 0x0000_0100_0000_01b3
        }
        return h < firstHashed ? h &+ firstHashed : h
    }

    public static func snapshotRoot(_ id: SnapshotID) -> UInt64 { hash("dir:\(id):") }
    public static func directory(_ id: SnapshotID, _ path: String) -> UInt64 { hash("dir:\(id):\(path)") }
    public static func symlink(_ id: SnapshotID, _ path: String) -> UInt64 { hash("symlink:\(id):\(path)") }
    public static func object(_ objectPath: String) -> UInt64 { hash("object:\(objectPath)") }
    /// A stored file: its object, and the metadata its entry recorded. Snapshots that share an object with the same
    /// owner, mode and attributes share one inode; one chowned or chmodded between them (an unchanged file that a
    /// native-incremental snapshot reuses) is an inode of its own, since the kernel keeps one set of attributes per
    /// inode. Entries recorded without an owner keep the number they always had. A view's file made of part of an
    /// object (`objectOffset`) is numbered by that part.
    public static func file(_ e: SnapshotEntry) -> UInt64? {
        guard let p = e.objectPath else { return nil }
        // A part of an object is a file of its own, with a length of its own.
        if let offset = e.objectOffset { return hash("object:\(p)@\(offset)+\(e.size)") }
        guard e.uid != nil || e.gid != nil || e.xattrs != nil else { return object(p) }
        let attrs = e.xattrs.map { $0.blob.base64EncodedString() } ?? ""
        return hash("object:\(p):\(e.mode & 0o7777):\(e.uid ?? 0):\(e.gid ?? 0):\(attrs)")
    }
    public static func request(_ seq: Int64) -> UInt64 { hash("request:\(seq)") }
    public static func report(_ name: String) -> UInt64 { hash("report:\(name)") }
    public static func job(_ job: String) -> UInt64 { hash("job:\(job)") }
    public static func jobLatest(_ job: String) -> UInt64 { hash("job-latest:\(job)") }
    /// The kernel's handle for a snapshot directory reached through `by-job/`. Linux lets a directory have one
    /// name only, so the same handle at two paths would make the kernel move its cached name back and forth
    /// between them; a handle of its own per view avoids that, while `stat` shows the directory's one inode number.
    public static func jobView(_ flat: UInt64) -> UInt64 { hash("job-view:\(flat)") }
    /// `.snapfs/jobs/<job>/`: not `by-job/<job>/`, which has a number of its own.
    public static func controlJob(_ job: String) -> UInt64 { hash("control-job:\(job)") }
    public static func jobStatus(_ job: String) -> UInt64 { hash("job-status:\(job)") }
    /// `.snapfs/jobs/<job>/parallelism`, `restart`, `stop`, `upgrade`.
    public static func jobControl(_ job: String, _ file: JobControlFile) -> UInt64 { hash("job-control:\(job):\(file.rawValue)") }
}

/// The writable files of `.snapfs/jobs/<job>/`: writing one line asks for the intent of that name.
public enum JobControlFile: String, Sendable, Hashable, CaseIterable {
    case parallelism, restart, stop, upgrade

    /// The intent a write asks for.
    var intent: String { self == .parallelism ? "rescale" : rawValue }
}

/// The directories of the control tree.
public enum ControlDir: Sendable, Hashable {
    case top, trigger, requests, snapshots
    /// `jobs/` and `jobs/<job>/`, for engines that run jobs (Flink).
    case jobs
    case job(String)
}

/// The read-only files of the control tree, generated when opened.
public enum ControlFile: Sendable, Hashable {
    case formats, status, events
    case request(Int64)
    case report(String)
    /// `jobs/<job>/status`.
    case jobStatus(String)
    /// `jobs/<job>/parallelism`, `restart`, `stop`, `upgrade`: read to see, write one line to act.
    case jobControl(String, JobControlFile)
}

/// What an inode number stands for. Kinds of node differ in what every operation means (SPEC §4), and the
/// operations in `SnapFileSystem` switch on this once.
public enum Node: Sendable, Hashable {
    case root
    case latest
    /// `by-job/`: one directory per job (SPEC §7, Flink).
    case jobs
    /// `by-job/<job>/`: the job's snapshots under their Flink names, and its `latest`.
    case job(String)
    /// `by-job/<job>/latest`, a link to that job's recovery point.
    case jobLatest(String)
    /// A snapshot's directory (its top or one inside it) reached through `by-job/`. Everything but the kernel's
    /// handle (`ino`) is the flat node's: attributes, inode number shown, content, and what each operation does.
    /// Files and symbolic links inside need no such wrapper: the kernel lets those have many names.
    indirect case jobView(Node)
    case controlDir(ControlDir)
    case controlFile(ControlFile)
    case trigger(TriggerFormat)
    /// A snapshot's top directory.
    case snapshot(SnapshotID)
    /// A directory inside a snapshot, by its path within it.
    case directory(SnapshotID, String)
    /// A file inside a snapshot; the entry is kept so an open file stays readable after its snapshot is deleted.
    case file(SnapshotID, SnapshotEntry)
    case symlink(SnapshotID, String)

    var ino: UInt64 {
        switch self {
        case .root: return InodeNumber.root
        case .latest: return InodeNumber.latest
        case .jobs: return InodeNumber.jobs
        case .job(let j): return InodeNumber.job(j)
        case .jobLatest(let j): return InodeNumber.jobLatest(j)
        case .jobView(let n): return InodeNumber.jobView(n.ino)
        case .controlDir(let d):
            switch d {
            case .top: return InodeNumber.control
            case .trigger: return InodeNumber.triggerDir
            case .requests: return InodeNumber.requestsDir
            case .snapshots: return InodeNumber.snapshotsDir
            case .jobs: return InodeNumber.jobsDir
            case .job(let j): return InodeNumber.controlJob(j)
            }
        case .controlFile(let f):
            switch f {
            case .formats: return InodeNumber.formats
            case .status: return InodeNumber.status
            case .events: return InodeNumber.events
            case .request(let s): return InodeNumber.request(s)
            case .report(let n): return InodeNumber.report(n)
            case .jobStatus(let j): return InodeNumber.jobStatus(j)
            case .jobControl(let j, let f): return InodeNumber.jobControl(j, f)
            }
        case .trigger(let f): return InodeNumber.trigger(f)
        case .snapshot(let id): return InodeNumber.snapshotRoot(id)
        case .directory(let id, let p): return InodeNumber.directory(id, p)
        case .file(let id, let e): return InodeNumber.file(e) ?? InodeNumber.hash("file:\(id):\(e.path)")
        case .symlink(let id, let p): return InodeNumber.symlink(id, p)
        }
    }

    /// The node as reached through the flat root: what every operation but the kernel's handle is about.
    var flat: Node {
        if case .jobView(let n) = self { return n }
        return self
    }

    /// Whether a node is a directory the kernel must see under a handle of its own in each view.
    var isSnapshotDirectory: Bool {
        switch self {
        case .snapshot, .directory: return true
        default: return false
        }
    }

    /// Where inside a snapshot this node is, if it is inside one.
    var snapshotLocation: (SnapshotID, String)? {
        switch self {
        case .jobView(let n): return n.snapshotLocation
        case .snapshot(let id): return (id, "")
        case .directory(let id, let p): return (id, p)
        case .file(let id, let e): return (id, e.path)
        case .symlink(let id, let p): return (id, p)
        default: return nil
        }
    }
}

/// The one place inode numbers are resolved back to nodes. The kernel only ever names an inode it learnt from an
/// entry reply (lookup, create, mkdir, symlink, link), so registering there is enough; entries are never reused for
/// something else because the numbers are derived from identities.
///
/// Each node counts the entry replies that named it, as the kernel does (its `nlookup`): FORGET takes back what
/// the kernel no longer holds, and a node whose count reaches 0 leaves the table, so memory follows what the
/// kernel caches rather than everything ever walked. A node looked up again gets the same number back, since the
/// number is its identity's hash. The fixed nodes (root, `.snapfs`, `latest`, `by-job/`) resolve by number and
/// need no entry.
struct InodeTable {
    private struct Held {
        var node: Node
        var lookups: UInt64
    }

    private var nodes: [UInt64: Held] = [:]

    /// Nodes held for the kernel now (the fixed ones not counted).
    var count: Int { nodes.count }

    /// Records one more entry reply naming `node`; call it only for a reply actually being sent.
    mutating func register(_ node: Node) -> UInt64 {
        let ino = node.ino
        if var held = nodes[ino] {
            // A stored object shared by several snapshots is one inode: the newest holder answers for it.
            if held.node != node { held.node = node }
            held.lookups += 1
            nodes[ino] = held
        } else {
            nodes[ino] = Held(node: node, lookups: 1)
        }
        return ino
    }

    /// The kernel dropped `n` of its references to `ino` (FORGET, BATCH_FORGET). Forgetting a node the table does
    /// not hold, or more references than it has, is harmless: the fixed nodes are never held, and a kernel
    /// forgetting after an unmount-time reset must not bring a node back.
    mutating func forget(_ ino: UInt64, _ n: UInt64) {
        guard var held = nodes[ino] else { return }
        if held.lookups <= n {
            nodes[ino] = nil
            shrinkIfMostlyEmpty()
        } else {
            held.lookups -= n
            nodes[ino] = held
        }
    }

    /// A dictionary keeps the storage of its largest size when entries leave: after a walk of a million entries
    /// is forgotten, that would be the walk's whole table. Copying the few left into a table of their size, once
    /// the table is mostly empty, gives it back; each copy follows at least as many removals as it copies entries.
    private mutating func shrinkIfMostlyEmpty() {
        guard nodes.capacity >= 4096, nodes.count < nodes.capacity / 8 else { return }
        var smaller = [UInt64: Held](minimumCapacity: nodes.count * 2)
        for (ino, held) in nodes { smaller[ino] = held }
        nodes = smaller
        // The forgotten nodes' small allocations went back to malloc's free lists, not to the system: hand the
        // free pages back, so the daemon's resident size falls with what it holds.
        MallocTrim.run()
    }

    /// How many entry replies of `ino` the kernel has not forgotten (0 for a node not held).
    func lookups(_ ino: UInt64) -> UInt64 { nodes[ino]?.lookups ?? 0 }

    func node(_ ino: UInt64) -> Node? {
        if let n = nodes[ino]?.node { return n }
        switch ino {
        case InodeNumber.root: return .root
        case InodeNumber.latest: return .latest
        case InodeNumber.jobs: return .jobs
        case InodeNumber.control: return .controlDir(.top)
        case InodeNumber.triggerDir: return .controlDir(.trigger)
        case InodeNumber.requestsDir: return .controlDir(.requests)
        case InodeNumber.snapshotsDir: return .controlDir(.snapshots)
        case InodeNumber.jobsDir: return .controlDir(.jobs)
        case InodeNumber.formats: return .controlFile(.formats)
        case InodeNumber.status: return .controlFile(.status)
        case InodeNumber.events: return .controlFile(.events)
        default:
            for f in TriggerFormat.allCases where InodeNumber.trigger(f) == ino { return .trigger(f) }
            return nil
        }
    }
}

/// glibc's `malloc_trim`, which Swift's Glibc module does not import (it lives in <malloc.h>): found once by name,
/// and a no-op on a C library without it.
enum MallocTrim {
    private typealias Trim = @convention(c) (Int) -> Int32
    private static let trim: Trim? = {
        #if canImport(Glibc)
        guard let sym = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "malloc_trim") else { return nil }
        return unsafeBitCast(sym, to: Trim.self)
        #else
        return nil
        #endif
    }()

    static func run() { _ = trim?(0) }
}
