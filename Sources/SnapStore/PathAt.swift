import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// System calls on a path below a base directory (a state directory, the store, an export target), whatever its
/// depth. The kernel refuses a single path argument longer than PATH_MAX (4096 bytes) with ENAMETOOLONG, but a tree
/// may be deeper than that; such a path is reached component by component through directory descriptors
/// (openat, mkdirat, fstatat, unlinkat), as `tar` and `rm -r` reach it. Shorter paths take one ordinary call.
/// `base` is a path as the user gave it; `rel` is a store path, whose names are mapped to bytes by `PathBytes`.
/// Every function returns what its system call would, with `errno` set on failure.
public enum PathAt {
    /// The whole path's bytes, and whether one system call can take it.
    private static func joined(_ base: String, _ rel: String) -> [UInt8]? {
        var bytes = Array(base.utf8)
        if !rel.isEmpty {
            if bytes.last != UInt8(ascii: "/") { bytes.append(UInt8(ascii: "/")) }
            bytes += PathBytes.kernel(rel)
        }
        return bytes.count < Int(PATH_MAX) ? bytes + [0] : nil
    }

    private static func withShort<R>(_ bytes: [UInt8], _ body: (UnsafePointer<CChar>) -> R) -> R {
        bytes.withUnsafeBufferPointer { $0.withMemoryRebound(to: CChar.self) { body($0.baseAddress!) } }
    }

    /// Opens the directory holding `rel`'s last component and calls `body` with it and that component's name.
    /// With `create`, missing directories on the way are made (mode `mode`). -1 and errno when a step fails.
    public static func inParent<R: SignedInteger>(_ base: String, _ rel: String, create: Bool = false, mode: mode_t = 0o755,
                                                  _ body: (Int32, UnsafePointer<CChar>) -> R) -> R {
        var names = PathBytes.components(rel)
        guard let last = names.popLast() else { errno = EINVAL; return -1 }
        var fd = Glibc.open(base, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if fd < 0 { return -1 }
        for n in names {
            var next = PathBytes.withCPath(n) { openat(fd, $0, O_RDONLY | O_DIRECTORY | O_CLOEXEC) }
            if next < 0 && errno == ENOENT && create {
                let made = PathBytes.withCPath(n) { mkdirat(fd, $0, mode) }
                if made == 0 || errno == EEXIST { next = PathBytes.withCPath(n) { openat(fd, $0, O_RDONLY | O_DIRECTORY | O_CLOEXEC) } }
            }
            let e = errno
            close(fd)
            guard next >= 0 else { errno = e; return -1 }
            fd = next
        }
        let r = PathBytes.withCPath(last) { body(fd, $0) }
        let e = errno
        close(fd)
        errno = e
        return r
    }

    public static func open(_ base: String, _ rel: String, _ flags: Int32, _ mode: mode_t = 0) -> Int32 {
        if let p = joined(base, rel) { return withShort(p) { Glibc.open($0, flags, mode) } }
        return inParent(base, rel) { openat($0, $1, flags, mode) }
    }

    public static func lstat(_ base: String, _ rel: String, _ st: inout stat) -> Int32 {
        if let p = joined(base, rel) { return withShort(p) { fstatat(AT_FDCWD, $0, &st, AT_SYMLINK_NOFOLLOW) } }
        return inParent(base, rel) { fstatat($0, $1, &st, AT_SYMLINK_NOFOLLOW) }
    }

    public static func stat(_ base: String, _ rel: String, _ st: inout stat) -> Int32 {
        if let p = joined(base, rel) { return withShort(p) { fstatat(AT_FDCWD, $0, &st, 0) } }
        return inParent(base, rel) { fstatat($0, $1, &st, 0) }
    }

    public static func unlink(_ base: String, _ rel: String) -> Int32 {
        if let p = joined(base, rel) { return withShort(p) { Glibc.unlink($0) } }
        return inParent(base, rel) { unlinkat($0, $1, 0) }
    }

    public static func rmdir(_ base: String, _ rel: String) -> Int32 {
        if let p = joined(base, rel) { return withShort(p) { Glibc.rmdir($0) } }
        return inParent(base, rel) { unlinkat($0, $1, AT_REMOVEDIR) }
    }

    public static func symlink(_ target: String, _ base: String, _ rel: String) -> Int32 {
        PathBytes.withCPath(target) { t in
            if let p = joined(base, rel) { return withShort(p) { Glibc.symlink(t, $0) } }
            return inParent(base, rel) { symlinkat(t, $0, $1) }
        }
    }

    /// A FIFO or device node, as `mode`'s type bits say.
    public static func mknod(_ base: String, _ rel: String, mode: UInt32, rdev: UInt64) -> Int32 {
        inParent(base, rel) { mknodat($0, $1, mode_t(mode), dev_t(rdev)) }
    }

    /// Creates `rel` and every missing directory above it; an existing directory is success.
    public static func makeDirectories(_ base: String, _ rel: String, mode: mode_t = 0o755) -> Int32 {
        if rel.isEmpty { return 0 }
        let r = inParent(base, rel, create: true, mode: mode) { mkdirat($0, $1, mode) }
        if r != 0 && errno == EEXIST {
            var st = Glibc.stat()
            if stat(base, rel, &st) == 0 && (st.st_mode & S_IFMT) == S_IFDIR { return 0 }
            errno = EEXIST
        }
        return r
    }

    /// Sets mode (unless a symlink) and mtime (as atime too); best effort, as `tar` does on extraction.
    public static func setTimes(_ base: String, _ rel: String, mode: UInt32, mtimeNanos: Int64, symlink: Bool) {
        let ts = timespec(tv_sec: Int(mtimeNanos / 1_000_000_000), tv_nsec: Int(mtimeNanos % 1_000_000_000))
        _ = inParent(base, rel) { fd, name -> Int32 in
            if !symlink { fchmodat(fd, name, mode_t(mode & 0o7777), 0) }
            var times = [ts, ts]
            return utimensat(fd, name, &times, symlink ? AT_SYMLINK_NOFOLLOW : 0)
        }
    }

    /// A hard link `rel` to `existing`, both below `base`; ENAMETOOLONG when either path is too long for one call.
    public static func link(_ base: String, _ existing: String, _ rel: String) -> Int32 {
        guard let from = joined(base, existing), let to = joined(base, rel) else { errno = ENAMETOOLONG; return -1 }
        return withShort(from) { f in withShort(to) { t in Glibc.link(f, t) } }
    }

    /// Gives an entry its recorded owner, mode and modification time, in that order (a chown clears set-id bits).
    /// Symlinks take the owner and time but have no mode. An owner that cannot be given (not root) is left as it is:
    /// the mode and time still are. Returns the first errno other than EPERM, or 0.
    @discardableResult
    public static func restore(_ base: String, _ rel: String, mode: UInt32, uid: UInt32?, gid: UInt32?, mtimeNanos: Int64, symlink: Bool,
                               xattrs: ExtendedAttributes? = nil) -> Int32 {
        let ts = timespec(tv_sec: Int(mtimeNanos / 1_000_000_000), tv_nsec: Int(mtimeNanos % 1_000_000_000))
        var failure: Int32 = 0
        let apply: (Int32, UnsafePointer<CChar>) -> Int32 = { fd, name in
            if uid != nil || gid != nil {
                if fchownat(fd, name, uid ?? UInt32.max, gid ?? UInt32.max, AT_SYMLINK_NOFOLLOW) != 0, errno != EPERM, failure == 0 { failure = errno }
            }
            // After the owner (a chown drops security.capability) and before the mode (an access ACL sets the group
            // bits to its mask; the recorded mode is the one that goes with the recorded ACL).
            if let x = xattrs, !x.isEmpty { let e = x.apply(in: fd, name); if e != 0, failure == 0 { failure = e } }
            if !symlink, fchmodat(fd, name, mode_t(mode & 0o7777), 0) != 0, failure == 0 { failure = errno }
            var times = [ts, ts]
            if utimensat(fd, name, &times, AT_SYMLINK_NOFOLLOW) != 0, failure == 0 { failure = errno }
            return 0
        }
        if rel.isEmpty {
            let fd = Glibc.open(base, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
            guard fd >= 0 else { return errno }
            defer { close(fd) }
            _ = apply(fd, ".")
        } else if inParent(base, rel, apply) != 0 {
            return errno
        }
        return failure
    }

    /// The names in an open directory (not "." and ".."), decoded losslessly; nil and errno when it cannot be read.
    /// `fd` stays open and owned by the caller.
    public static func names(in fd: Int32) -> [String]? {
        let own = openat(fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard own >= 0, let dir = fdopendir(own) else { return nil }
        defer { closedir(dir) }
        var out: [String] = []
        while let ent = readdir(dir) {
            let name = withUnsafeBytes(of: ent.pointee.d_name) { raw in PathBytes.string(kernel: raw.prefix(while: { $0 != 0 })) }
            if name != "." && name != ".." { out.append(name) }
        }
        return out
    }

    /// A symlink's target, as `readlinkat` gives its bytes.
    public static func readlink(in fd: Int32, _ name: String) -> String? {
        var buf = [UInt8](repeating: 0, count: Int(PATH_MAX) + 1)
        let n = PathBytes.withCPath(name) { c in buf.withUnsafeMutableBufferPointer { b in
            b.withMemoryRebound(to: CChar.self) { readlinkat(fd, c, $0.baseAddress!, $0.count - 1) }
        } }
        return n < 0 ? nil : PathBytes.string(kernel: buf[0..<n])
    }

    /// Calls `visit` for everything below `rel` (depth first, parents before children, names sorted by bytes), with
    /// its path relative to `base`, its lstat, and the open directory holding it. Entries that vanish meanwhile are
    /// left out. Returns the first error (`errno`, path) that stopped a directory from being listed, after visiting
    /// everything else.
    @discardableResult
    public static func walk(_ base: String, _ rel: String = "",
                            _ visit: (_ path: String, _ st: Glibc.stat, _ dirFD: Int32, _ name: String) -> Void) -> (Int32, String)? {
        let fd = rel.isEmpty ? Glibc.open(base, O_RDONLY | O_DIRECTORY | O_CLOEXEC) : open(base, rel, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        guard fd >= 0 else { return errno == ENOENT ? nil : (errno, rel) }
        defer { close(fd) }
        return walk(fd, rel, visit)
    }

    private static func walk(_ fd: Int32, _ rel: String,
                             _ visit: (String, Glibc.stat, Int32, String) -> Void) -> (Int32, String)? {
        guard let names = names(in: fd) else { return (errno, rel) }
        var firstError: (Int32, String)?
        for (_, name) in names.map({ (PathBytes.kernel($0), $0) }).sorted(by: { $0.0.lexicographicallyPrecedes($1.0) }) {
            let p = rel.isEmpty ? name : rel + "/" + name
            var st = Glibc.stat()
            let r = PathBytes.withCPath(name) { fstatat(fd, $0, &st, AT_SYMLINK_NOFOLLOW) }
            guard r == 0 else {
                if errno != ENOENT && firstError == nil { firstError = (errno, p) }
                continue
            }
            visit(p, st, fd, name)
            if (st.st_mode & S_IFMT) == S_IFDIR {
                let sub = PathBytes.withCPath(name) { openat(fd, $0, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC) }
                if sub < 0 {
                    if errno != ENOENT && firstError == nil { firstError = (errno, p) }
                    continue
                }
                let e = walk(sub, p, visit)
                close(sub)
                if firstError == nil { firstError = e }
            }
        }
        return firstError
    }
}
