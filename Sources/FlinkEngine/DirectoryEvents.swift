import Foundation
import Logging
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// Tells when a directory of a Flink store changes in a way that can mean a snapshot came or went, through Linux
/// inotify: a directory created, removed or renamed in a watched one (a new job, a new `chk-N`, a subsumed one
/// removed), or a `_metadata` written or renamed into place (Flink writes it last). Other files (state files, the
/// catalog and its log in the store's root) do not count.
///
/// inotify sees only changes made through this kernel: on a network file system (NFS, SMB, Ceph, 9p) or a FUSE
/// one, a change made by another machine raises no event, so `open` refuses those and the watcher polls.
final class DirectoryEvents: Sendable {
    private let fd: Int32
    private let root: String
    /// Watch descriptor by store-relative directory.
    private let watches = Mutex<[String: Int32]>([:])
    private let logger = Logger(label: "snapfs.flink.watcher")

    static let mask: UInt32 = UInt32(IN_CREATE | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO | IN_CLOSE_WRITE
                                     | IN_DELETE_SELF | IN_MOVE_SELF | IN_ONLYDIR)

    /// File system types (as `/proc/self/mounts` names them) whose changes inotify does not see when another
    /// machine makes them.
    static let remoteFileSystems: Set<String> = ["nfs", "nfs4", "cifs", "smb3", "smbfs", "ceph", "9p", "afs", "lustre", "gpfs", "fuse"]

    /// The type of the file system `path` is on: the mount point in `mounts` that is its longest prefix.
    static func fileSystemType(of path: String, mounts: String) -> String? {
        var best: (point: String, type: String)?
        for line in mounts.split(separator: "\n") {
            let fields = line.split(separator: " ")
            guard fields.count >= 3 else { continue }
            let point = String(fields[1]).replacingOccurrences(of: "\\040", with: " ")
            let under = point == "/" || path == point || path.hasPrefix(point + "/")
            if under, point.utf8.count >= (best?.point.utf8.count ?? -1) { best = (point, String(fields[2])) }
        }
        return best?.type
    }

    static func isRemote(_ type: String) -> Bool {
        remoteFileSystems.contains(type) || type.hasPrefix("fuse.") || type.hasPrefix("nfs")
    }

    /// Events for the store at `root`, or why inotify cannot be used there.
    static func open(root: String) -> Result<DirectoryEvents, Unavailable> {
        let real = URL(fileURLWithPath: root).resolvingSymlinksInPath().path
        if let mounts = try? String(contentsOfFile: "/proc/self/mounts", encoding: .utf8),
           let type = fileSystemType(of: real, mounts: mounts), isRemote(type) {
            return .failure(Unavailable(reason: "the store is on a \(type) file system, whose remote changes raise no inotify event"))
        }
        let fd = inotify_init1(Int32(IN_NONBLOCK | IN_CLOEXEC))
        guard fd >= 0 else { return .failure(Unavailable(reason: "inotify_init1: \(String(cString: strerror(errno)))")) }
        return .success(DirectoryEvents(fd: fd, root: root))
    }

    struct Unavailable: Error { var reason: String }

    private init(fd: Int32, root: String) {
        self.fd = fd
        self.root = root
    }

    deinit { close(fd) }

    /// Watches exactly `directories` (store-relative, "" the root) from now on. Returns whether any was new:
    /// something may have changed in it before its watch began, so the caller looks once more.
    @discardableResult
    func watch(_ directories: [String]) -> Bool {
        watches.withLock { current in
            var added = false
            let wanted = Set(directories)
            for (relative, wd) in current where !wanted.contains(relative) {
                inotify_rm_watch(fd, wd)
                current[relative] = nil
            }
            for relative in wanted where current[relative] == nil {
                let wd = inotify_add_watch(fd, relative.isEmpty ? root : root + "/" + relative, Self.mask)
                if wd >= 0 {
                    current[relative] = wd
                    added = true
                } else if errno != ENOENT {
                    logger.warning("cannot watch \(root)/\(relative): \(String(cString: strerror(errno))); the periodic pass still sees it")
                }
            }
            return added
        }
    }

    /// Waits up to `timeout` seconds for events and says whether any of them matters. Events that are not about a
    /// snapshot are read and dropped.
    func wait(timeout: TimeInterval) -> Bool {
        var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        guard poll(&p, 1, Int32(timeout * 1000)) > 0 else { return false }
        var relevant = false
        var buffer = [UInt8](repeating: 0, count: 64 * 1024)
        while true {
            let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n <= 0 { break }
            var offset = 0
            while offset + 16 <= n {
                let (mask, length) = buffer.withUnsafeBytes { b in
                    (b.loadUnaligned(fromByteOffset: offset + 4, as: UInt32.self), Int(b.loadUnaligned(fromByteOffset: offset + 12, as: UInt32.self)))
                }
                let nameBytes = buffer[(offset + 16)..<min(n, offset + 16 + length)].prefix { $0 != 0 }
                let name = String(decoding: nameBytes, as: UTF8.self)
                if Self.matters(mask: mask, name: name) { relevant = true }
                offset += 16 + length
            }
        }
        return relevant
    }

    static func matters(mask: UInt32, name: String) -> Bool {
        if mask & UInt32(IN_Q_OVERFLOW) != 0 { return true }
        if mask & UInt32(IN_DELETE_SELF | IN_MOVE_SELF) != 0 { return true }
        if mask & UInt32(IN_ISDIR) != 0 { return !name.hasPrefix(".") }
        return name == "_metadata"
    }
}
