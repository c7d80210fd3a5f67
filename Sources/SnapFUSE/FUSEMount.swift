import CFuse3
import Foundation
import Logging
import SnapFileOps
import SnapStore
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// A libfuse session pointer that the catalog poller may use while the loop runs. libfuse documents the
/// `fuse_lowlevel_notify_*` calls as safe from any thread while the session exists, and `FUSEMount` stops the
/// poller before it destroys the session, so sharing the pointer across threads is sound.
private struct SessionPointer: @unchecked Sendable {
    let raw: OpaquePointer
}

/// Whether the kernel skips OPEN/FLUSH/RELEASE and OPENDIR/RELEASEDIR on this mount: learned once, at INIT, from
/// what it is capable of, and read by every open.
final class OpenlessIO: Sendable {
    private let filesFlag = Atomic<Bool>(false)
    private let directoriesFlag = Atomic<Bool>(false)

    var files: Bool { filesFlag.load(ordering: .relaxed) }
    var directories: Bool { directoriesFlag.load(ordering: .relaxed) }

    func set(files: Bool, directories: Bool) {
        filesFlag.store(files, ordering: .relaxed)
        directoriesFlag.store(directories, ordering: .relaxed)
    }
}

public enum MountError: Error, CustomStringConvertible {
    case setup(String)
    public var description: String {
        switch self { case .setup(let s): return s }
    }
}

/// A mounted `SnapFileSystem`: owns the libfuse session, runs its multi-threaded loop until `fusermount3 -u`,
/// SIGINT, SIGTERM or SIGHUP, and tells the kernel to forget root names the catalog changed behind its back.
public final class FUSEMount: Sendable {
    public let fs: SnapFileSystem
    public let mountpoint: String
    let options: [String]
    let logger = Logger(label: "snapfs.fuse")
    private let session = Mutex<SessionPointer?>(nil)
    private let poller = Mutex<PeriodicTask?>(nil)
    /// Whether `wakeLoopIfSignalled` has sent its request (once is enough: one woken worker ends the loop).
    private let wakeSent = Mutex(false)
    let openless = OpenlessIO()
    let readAhead = ReadAhead()
    /// False makes the kernel send OPEN and RELEASE for every file and directory, as kernels before 4.19 do: the
    /// path those kernels take stays testable here, and its cost measurable.
    let skipOpens: Bool

    /// `options` are passed to the kernel as `-o`; `default_permissions,fsname=snapfs,subtype=snapfs` are always set.
    public init(fs: SnapFileSystem, mountpoint: String, allowOther: Bool, skipOpens: Bool = true, extraOptions: [String] = []) {
        self.fs = fs
        self.mountpoint = mountpoint
        self.skipOpens = skipOpens
        var o = ["default_permissions", "fsname=snapfs", "subtype=snapfs"]
        if allowOther { o.append("allow_other") }
        self.options = o + extraOptions
    }

    /// Mounts, serves until unmounted or signalled, then unmounts. Blocking.
    public func run(threads: Int = 32) throws {
        var args = fuse_args(argc: 0, argv: nil, allocated: 0)
        defer { fuse_opt_free_args(&args) }
        for a in ["snapfs", "-o", options.joined(separator: ",")] {
            guard fuse_opt_add_arg(&args, a) == 0 else { throw MountError.setup("cannot build mount arguments") }
        }
        var ops = makeOperations()
        let me = Unmanaged.passUnretained(self).toOpaque()
        guard let se = fuse_session_new(&args, &ops, MemoryLayout<fuse_lowlevel_ops>.size, me) else {
            throw MountError.setup("cannot create a FUSE session (options: \(options.joined(separator: ",")))")
        }
        defer { fuse_session_destroy(se) }
        guard fuse_set_signal_handlers(se) == 0 else { throw MountError.setup("cannot install signal handlers") }
        defer { fuse_remove_signal_handlers(se) }
        guard fuse_session_mount(se, mountpoint) == 0 else {
            throw MountError.setup("cannot mount on \(mountpoint) (is /dev/fuse available, and fusermount3 installed?)")
        }
        session.withLock { $0 = SessionPointer(raw: se) }
        fs.setKernelNotifier { [self] inodes in invalidate(inodes) }
        logger.notice("mounted", metadata: ["mountpoint": .string(mountpoint), "store": .string(fs.store.root.path)])
        startPoller()
        // Triggers and deletes block a worker until they finish; enough threads keep reads flowing meanwhile.
        // libfuse 3.14 is built with versioned symbols, so `fuse_session_loop_mt` here binds to
        // fuse_session_loop_mt@@FUSE_3.12, the variant that takes this configuration.
        guard let cfg = fuse_loop_cfg_create() else { throw MountError.setup("cannot create the FUSE loop configuration") }
        defer { fuse_loop_cfg_destroy(cfg) }
        fuse_loop_cfg_set_max_threads(cfg, UInt32(threads))
        fuse_loop_cfg_set_idle_threads(cfg, UInt32(min(threads, 8)))
        let rc = withExtendedLifetime(self) { fuse_session_loop_mt(se, cfg) }
        stopPoller()
        session.withLock { $0 = nil }
        fuse_session_unmount(se)
        logger.notice("unmounted", metadata: ["mountpoint": .string(mountpoint), "loop": .stringConvertible(rc)])
    }

    /// Polls the catalog's generation a few times a second: a delete, move or snapshot made by the command line
    /// or the scheduler shows in the mount within a second (SPEC §8), because the kernel is told to forget
    /// exactly the root names that changed. Its ticks also raise the read-ahead window once `INIT` is done.
    private func startPoller() {
        let t = PeriodicTask(name: "snapfs-poller", interval: 0.25, waitsFirst: false) { [self] in
            wakeLoopIfSignalled()
            tellKernel(fs.poll())
            readAhead.adjust(mountpoint: mountpoint, logger: logger)
        }
        poller.withLock { $0 = t }
        t.start()
    }

    /// libfuse's signal handler only marks the session exited; its workers see the mark after their next request.
    /// When the signal lands on a thread that is not one of them (a timer's, the API's), every worker stays blocked
    /// reading `/dev/fuse` and SIGINT or SIGTERM seems ignored. So once the mark is set, a request is sent to the
    /// mount from a thread of its own (a `statvfs`, answered like any other), which wakes a worker to see it. Never
    /// from the poller itself: if the loop has already ended, nothing answers until the unmount.
    private func wakeLoopIfSignalled() {
        guard let se = session.withLock({ $0?.raw }), fuse_session_exited(se) != 0 else { return }
        guard wakeSent.withLock({ sent in defer { sent = true }; return !sent }) else { return }
        logger.info("signalled: waking the FUSE loop to stop", metadata: ["mountpoint": .string(mountpoint)])
        let path = mountpoint
        Thread.detachNewThread {
            var v = statvfs()
            _ = statvfs(path, &v)
        }
    }

    private func stopPoller() {
        poller.withLock { $0 }?.stop()
        poller.withLock { $0 = nil }
    }

    /// Drops the kernel's attributes and cached pages or listing of each inode (offset 0, length 0).
    private func invalidate(_ inodes: [UInt64]) {
        guard let se = session.withLock({ $0 }) else { return }
        for ino in inodes { _ = fuse_lowlevel_notify_inval_inode(se.raw, ino, 0, 0) }
    }

    private func tellKernel(_ changes: RootChanges) {
        guard !changes.isEmpty, let se = session.withLock({ $0 }) else { return }
        for name in changes.names {
            _ = name.withCString { fuse_lowlevel_notify_inval_entry(se.raw, 1, $0, strlen($0)) }
        }
        _ = fuse_lowlevel_notify_inval_inode(se.raw, 1, 0, 0)
        // Names in `by-job/` and its job directories, and names inside snapshots back from a staged unlink.
        for e in changes.entries {
            _ = PathBytes.withCPath(e.name) { fuse_lowlevel_notify_inval_entry(se.raw, e.parent, $0, strlen($0)) }
        }
        // Attributes only (offset -1): the content of a stored object never changes, its page cache stays.
        for ino in changes.inodes { _ = fuse_lowlevel_notify_inval_inode(se.raw, ino, -1, 0) }
        // Offset 0, length 0: attributes and cached data, which for a directory is its cached listing.
        for ino in changes.directories { _ = fuse_lowlevel_notify_inval_inode(se.raw, ino, 0, 0) }
    }
}
