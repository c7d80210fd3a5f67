import Foundation
import SnapStore

/// What `stat` shows for a node. Plain values, so the adapter copies them into `struct stat` in one place.
public struct Attr: Sendable, Equatable {
    public var ino: UInt64
    /// Type and permission bits, as `st_mode`.
    public var mode: UInt32
    public var nlink: UInt32
    public var size: Int64
    /// 512-byte blocks, as `du` counts them.
    public var blocks: Int64
    public var mtimeNanos: Int64
    public var uid: UInt32
    public var gid: UInt32
    /// A device node's device number.
    public var rdev: UInt64 = 0

    public var isDirectory: Bool { mode & 0o170000 == 0o040000 }
    public var isRegular: Bool { mode & 0o170000 == 0o100000 }
    public var isSymlink: Bool { mode & 0o170000 == 0o120000 }
}

/// What a LOOKUP finds: an entry, or no such name and how long the kernel may remember that (0: not at all).
public enum LookupResult: Sendable {
    case found(Entry)
    case missing(timeout: Double)
}

/// A lookup's answer with how long the kernel may trust it. Snapshot content is immutable, so its names may be cached
/// long; the root and the control tree change under the kernel's feet and are trusted for a second.
public struct Entry: Sendable {
    public var attr: Attr
    public var entryTimeout: Double
    public var attrTimeout: Double

    /// The kernel's handle for the node (`fuse_entry_param.ino`). Usually the inode number `stat` shows, but a
    /// snapshot directory reached through `by-job/` has a handle of its own and shows its flat inode number.
    public var nodeID: UInt64

    public init(attr: Attr, entryTimeout: Double, attrTimeout: Double, nodeID: UInt64? = nil) {
        self.attr = attr; self.entryTimeout = entryTimeout; self.attrTimeout = attrTimeout
        self.nodeID = nodeID ?? attr.ino
    }
}

public struct DirEntry: Sendable, Equatable {
    public var name: String
    public var ino: UInt64
    public var mode: UInt32
}

/// How the kernel should treat an open file, on kernels that still send OPEN: snapshot files are immutable (keep
/// the page cache across opens), generated files and triggers change under it (no caching at all).
public struct OpenReply: Sendable {
    public var directIO: Bool
    public var keepCache: Bool
}

public struct FSStats: Sendable {
    public var blockSize: UInt64
    public var blocks: UInt64
    public var blocksFree: UInt64
    public var blocksAvailable: UInt64
    public var files: UInt64
    public var filesFree: UInt64
    public var nameMax: UInt64
}

/// Which attributes a `setattr` asks to change; only the trigger files accept any of them.
public struct SetAttrRequest: Sendable {
    public var size: Int64?
    public var mode: UInt32?
    public var uid: UInt32?
    public var gid: UInt32?
    public var times: Bool

    public init(size: Int64? = nil, mode: UInt32? = nil, uid: UInt32? = nil, gid: UInt32? = nil, times: Bool = false) {
        self.size = size; self.mode = mode; self.uid = uid; self.gid = gid; self.times = times
    }
}

/// Who asks for an operation, as the kernel reports it: for the few checks the kernel cannot make itself (a hold is
/// an extended attribute of the snapshot, but changes what may be deleted, so it takes the right to delete).
public struct Caller: Sendable, Hashable {
    public var uid: UInt32
    public var gid: UInt32

    public init(uid: UInt32, gid: UInt32) { self.uid = uid; self.gid = gid }

    /// The daemon's own user: tests and callers without a kernel request.
    public static var daemon: Caller { Caller(uid: getuid(), gid: getgid()) }
}

public struct FileOpsOptions: Sendable {
    /// How long staged unlinks inside a snapshot stay hidden without a following `rmdir S` (SPEC §4: 60 s).
    public var stageWindow: TimeInterval
    public var uid: UInt32
    public var gid: UInt32
    /// Seconds the kernel may cache names and attributes inside snapshots: their content is immutable, and the
    /// link counts that do move are invalidated inode by inode when the set of snapshots changes.
    public var snapshotEntryTimeout: Double
    public var snapshotAttrTimeout: Double
    /// Seconds for the root and control tree, which change whenever the catalog does.
    public var controlTimeout: Double

    public init(stageWindow: TimeInterval = 60, uid: UInt32 = getuid(), gid: UInt32 = getgid(),
                snapshotEntryTimeout: Double = 3600, snapshotAttrTimeout: Double = 3600, controlTimeout: Double = 1) {
        self.stageWindow = stageWindow; self.uid = uid; self.gid = gid
        self.snapshotEntryTimeout = snapshotEntryTimeout; self.snapshotAttrTimeout = snapshotAttrTimeout
        self.controlTimeout = controlTimeout
    }
}

/// The root names the kernel must forget because the catalog changed behind it (CLI, scheduler, retention).
public struct RootChanges: Sendable, Equatable {
    public var names: [String]
    /// Inodes whose attributes the kernel may hold and that changed: link counts of stored objects move when the
    /// set of snapshots does. Everything else inside a snapshot is immutable, hence its long attribute timeout.
    public var inodes: [UInt64] = []
    /// Directories inside snapshots whose listing changed (staged entries that came back): the kernel caches
    /// listings of snapshot directories, which are otherwise immutable.
    public var directories: [UInt64] = []
    /// Names outside the root whose meaning changed: snapshots and `latest` links in `by-job/`.
    public var entries: [ChangedEntry] = []
    public var isEmpty: Bool { names.isEmpty && inodes.isEmpty && directories.isEmpty && entries.isEmpty }

    public init(names: [String], inodes: [UInt64] = [], directories: [UInt64] = [], entries: [ChangedEntry] = []) {
        self.names = names; self.inodes = inodes; self.directories = directories; self.entries = entries
    }
}

/// A name in a directory other than the root that the kernel must forget (`notify_inval_entry`).
public struct ChangedEntry: Sendable, Hashable {
    /// The directory's kernel handle.
    public var parent: UInt64
    public var name: String

    public init(parent: UInt64, name: String) { self.parent = parent; self.name = name }
}
