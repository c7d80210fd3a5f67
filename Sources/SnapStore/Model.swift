import Foundation

/// Who asked for a snapshot: the system on its interval, or a person or script.
/// Only checkpoints are subject to retention; user-induced snapshots are never removed automatically.
public enum SnapshotKind: String, Codable, Sendable, CaseIterable {
    case checkpoint
    case user
}

/// How a snapshot's bytes are laid out in the store (SPEC §3).
public enum SnapshotFormat: String, Codable, Sendable, CaseIterable {
    case nativeIncremental = "native-incremental"
    case nativeFull = "native-full"
    case canonical

    /// Parses a format name as users type it; `default` is resolved by the engine, not here.
    public init(userInput: String) throws(StoreError) {
        guard let f = SnapshotFormat(rawValue: userInput) else {
            throw .badInput("unknown format '\(userInput)': expected one of native-incremental, native-full, canonical, default")
        }
        self = f
    }
}

/// A snapshot's life: written, then complete. Rows in `writing` whose writer died are rolled back on open.
public enum SnapshotState: String, Codable, Sendable {
    case writing
    case complete
}

public typealias SnapshotID = Int64
public typealias ObjectID = Int64

/// One complete, immutable state image.
public struct Snapshot: Codable, Sendable, Hashable {
    public var id: SnapshotID
    public var name: String
    public var kind: SnapshotKind
    public var format: SnapshotFormat
    public var state: SnapshotState
    public var engine: String
    public var job: String?
    /// Seconds since 1970.
    public var createdAt: Double
    public var completedAt: Double?
    /// A directory (relative to the store root) that belongs to this snapshot alone; removed once empty after a delete.
    public var directory: String?
    /// An engine's own identifier, e.g. a Flink checkpoint id.
    public var externalID: String?
    /// The mode, owner and time of the source's root directory when the snapshot was taken (nil: not recorded).
    public var root: RootOwnership?
}

/// Who may enter a snapshot's root: the permission bits and owner its source's root directory had. The mount shows
/// the snapshot's directory with these, so a snapshot is no more open to other users than its state was.
public struct RootOwnership: Codable, Sendable, Hashable {
    public var mode: UInt32
    public var uid: UInt32
    public var gid: UInt32
    /// The root directory's modification time, nanoseconds since 1970 (nil: not recorded; the snapshot's creation
    /// time is shown instead).
    public var mtimeNanos: Int64?
    /// The root directory's extended attributes (POSIX ACLs as their `system.posix_acl_*` bytes), by name.
    public var xattrs: ExtendedAttributes?

    public init(mode: UInt32, uid: UInt32, gid: UInt32, mtimeNanos: Int64? = nil, xattrs: ExtendedAttributes? = nil) {
        self.mode = mode & 0o7777; self.uid = uid; self.gid = gid; self.mtimeNanos = mtimeNanos; self.xattrs = xattrs
    }

    /// The mode, owner and time of a directory now, or nil if it cannot be read.
    public static func of(directory path: String) -> RootOwnership? {
        var st = stat()
        guard stat(path, &st) == 0 else { return nil }
        return RootOwnership(mode: UInt32(st.st_mode), uid: st.st_uid, gid: st.st_gid,
                             mtimeNanos: Int64(st.st_mtim.tv_sec) * 1_000_000_000 + Int64(st.st_mtim.tv_nsec),
                             xattrs: ExtendedAttributes.read(path: path))
    }
}

/// What a snapshot's directory entry is.
public enum EntryType: String, Codable, Sendable {
    case file
    case directory
    case symlink
    /// A named pipe: no content, restored with mkfifo.
    case fifo
    /// A character or block device node (which, `mode`'s type bits say): no content, restored with mknod and `rdev`.
    case device
}

/// What length a snapshot needs a file to have, as its engine records it.
///
/// Most files are written once at their final length, so anything else is damage. Some engines name files that
/// others keep writing, or whose recorded length leaves out bytes they never read (Flink's file-merging physical
/// files and changelog files): those need only reach the recorded length, and the file itself is the truth about
/// how long it is.
public enum SizeRule: String, Codable, Sendable {
    /// The file must be exactly `requiredSize` bytes.
    case exact
    /// The file must be at least `requiredSize` bytes; it may be longer and may grow.
    case atLeast = "at-least"

    /// Whether a file of `actual` bytes satisfies the rule for `required`.
    public func accepts(_ actual: Int64, required: Int64) -> Bool {
        self == .exact ? actual == required : actual >= required
    }
}

/// One entry of a snapshot, at its logical path (relative, no leading slash, `/`-separated).
public struct SnapshotEntry: Codable, Sendable, Hashable {
    public var path: String
    public var type: EntryType
    public var size: Int64
    /// Permission bits and type bits as `st_mode` would hold them.
    public var mode: UInt32
    /// Nanoseconds since 1970.
    public var mtimeNanos: Int64
    /// The stored bytes of a file; nil for directories and symlinks.
    public var object: ObjectID?
    /// Where the object lives, relative to the store root.
    public var objectPath: String?
    /// The SHA-256 of the file's bytes, as `sha256sum` prints it; nil when not known yet: a file stored with holes
    /// is checked by `sparseDigest` instead, and its SHA-256 computed when something asks for it (`Store.sha256(of:)`).
    public var sha256: String?
    /// The file's `SparseDigest` (over its non-zero blocks and their offsets), recorded for a file with holes.
    public var sparseDigest: String?
    public var symlinkTarget: String?
    /// The file's `st_nlink`: how many entries, in all snapshots, hold the same stored object with the same owner,
    /// mode and attributes (the names of one inode in the mount; see `Store.entries(of:)`).
    public var links: Int
    /// Files the store keeps with a snapshot but that are not part of its logical tree (a canonical manifest).
    public var hidden: Bool
    /// A device node's device number, as `st_rdev`.
    public var rdev: UInt64?
    /// How the file's length is checked: `size` is what the file held when recorded, `requiredSize` what the
    /// snapshot needs; for `exact` files the two are equal unless the file was already damaged.
    public var sizeRule: SizeRule
    public var requiredSize: Int64
    /// The owner the entry had in its source (nil: not recorded, as for engines that write their own files; the
    /// mount shows the daemon's user).
    public var uid: UInt32?
    public var gid: UInt32?
    /// The entry's extended attributes as its source had them, POSIX ACLs included (nil: none recorded).
    public var xattrs: ExtendedAttributes?
    /// The 512-byte blocks the stored object occupies (`st_blocks`): fewer than its length needs when it has holes.
    /// Nil when not recorded.
    public var blocks: Int64?
    /// For a file a view makes of part of a stored object (a Flink file-merging segment shown as a file of its own):
    /// where its bytes start in the object; the file is the `size` bytes from there. Nil: the whole object. Never
    /// stored in the catalog.
    public var objectOffset: Int64?

    public init(path: String, type: EntryType, size: Int64, mode: UInt32, mtimeNanos: Int64,
                object: ObjectID? = nil, objectPath: String? = nil, sha256: String? = nil,
                symlinkTarget: String? = nil, links: Int = 1, hidden: Bool = false, rdev: UInt64? = nil,
                sizeRule: SizeRule = .exact, requiredSize: Int64? = nil, uid: UInt32? = nil, gid: UInt32? = nil,
                xattrs: ExtendedAttributes? = nil, blocks: Int64? = nil, sparseDigest: String? = nil) {
        self.blocks = blocks
        self.sparseDigest = sparseDigest
        self.path = path; self.type = type; self.size = size; self.mode = mode; self.mtimeNanos = mtimeNanos
        self.object = object; self.objectPath = objectPath; self.sha256 = sha256
        self.symlinkTarget = symlinkTarget; self.links = links; self.hidden = hidden; self.rdev = rdev
        self.sizeRule = sizeRule; self.requiredSize = requiredSize ?? size
        self.uid = uid; self.gid = gid; self.xattrs = xattrs
    }
}

/// Stored bytes, referenced by one or more snapshot entries.
public struct StoredObject: Codable, Sendable, Hashable {
    public var id: ObjectID
    public var path: String
    public var size: Int64
    public var sha256: String?
}

/// The job whose state the store holds, as the delete rule needs it.
///
/// A store may hold the snapshots of several jobs (a Flink cluster's checkpoint directory holds one per job ID):
/// then `jobs` says, job by job, which snapshot each would restart from and whether that one is protected. The
/// delete rule protects every name `protects` answers yes for.
public struct JobStatus: Codable, Sendable, Hashable {
    public var running: Bool
    /// The snapshot the job would restart from; protected from delete while the job runs. In a store of several
    /// jobs, the configured job's, else the newest of the protected ones (what the mount's `latest` names).
    public var recoveryPoint: String?
    public var detail: String?
    /// Every job of a store that holds several, each with its own recovery point.
    public var jobs: [JobRecovery]

    public init(running: Bool, recoveryPoint: String?, detail: String? = nil, jobs: [JobRecovery] = []) {
        self.running = running; self.recoveryPoint = recoveryPoint; self.detail = detail; self.jobs = jobs
    }

    /// Whether a delete of `name` must be refused because some job may restart from it.
    public func protects(_ name: String) -> Bool { protectedNames.contains(name) }

    /// The job whose protected recovery point `name` is, if any.
    public func protectingJob(of name: String) -> JobRecovery? {
        jobs.first { $0.protected && $0.recoveryPoint == name }
    }

    /// Whether some job's recovery point is protected, and so a snapshot completing meanwhile may become one.
    public var protectsAny: Bool { jobs.isEmpty ? running : jobs.contains { $0.protected } }

    /// Every protected recovery point.
    public var protectedNames: Set<String> {
        if jobs.isEmpty { return running ? Set([recoveryPoint].compactMap { $0 }) : [] }
        return Set(jobs.filter(\.protected).compactMap(\.recoveryPoint))
    }
}

/// One job of a store that holds several, as the engine knows it now.
public struct JobRecovery: Codable, Sendable, Hashable {
    public var job: String
    /// What the engine reports (RUNNING, CANCELED, …), or `UNKNOWN` when nobody could say.
    public var state: String
    /// Whether its recovery point is protected: it runs, or nothing says it has ended.
    public var protected: Bool
    /// The snapshot it would restart from (nil: none in the store).
    public var recoveryPoint: String?
    /// Its newest complete snapshot by the engine's own numbering: the last one it can be restored from.
    public var newest: String?
    /// Where the recovery point and the state come from, in words.
    public var detail: String

    public init(job: String, state: String, protected: Bool, recoveryPoint: String?, newest: String?, detail: String) {
        self.job = job; self.state = state; self.protected = protected
        self.recoveryPoint = recoveryPoint; self.newest = newest; self.detail = detail
    }
}

/// Reports long work to whoever shows progress (a terminal bar, a log line, nothing).
public typealias ProgressHandler = @Sendable (_ done: Int64, _ total: Int64, _ what: String) -> Void
