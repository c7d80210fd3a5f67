import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// fsync of single files and directories: the only durability POSIX promises. `syncfs` is not enough, because a
/// FUSE or network file system under the store never sees it (the kernel does not pass it on to the daemon), and
/// a snapshot must not be listed before every byte it references and every name that leads to them is on disk.
enum Durability {
    /// Flushes an open file's bytes and size to stable storage.
    static func sync(fd: Int32, path: String) throws(StoreError) {
        while fsync(fd) != 0 {
            if errno == EINTR { continue }
            throw .io(path: path, errno: errno, what: "cannot flush to disk")
        }
    }

    /// Flushes a directory's names (the entries of files and directories created in it) to stable storage.
    /// A file system that cannot fsync a directory (EINVAL) commits names on its own; that is not an error.
    static func syncDirectory(_ path: String) throws(StoreError) {
        try syncDirectory(path, "")
    }

    /// Flushes the directory `rel` below `base` (`base` itself when `rel` is empty), opened through its parents
    /// (`PathAt`) so a name of any bytes at any depth is reached. `missingOK`: a directory already gone is no error.
    static func syncDirectory(_ base: String, _ rel: String, missingOK: Bool = false) throws(StoreError) {
        let shown = rel.isEmpty ? base : base + "/" + PathBytes.printable(rel)
        let fd = rel.isEmpty ? open(base, O_RDONLY | O_DIRECTORY | O_CLOEXEC) : PathAt.open(base, rel, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else {
            if missingOK && errno == ENOENT { return }
            throw .io(path: shown, errno: errno, what: "cannot open directory to flush it")
        }
        defer { close(fd) }
        while fsync(fd) != 0 {
            if errno == EINTR { continue }
            if errno == EINVAL || errno == ENOTSUP { return }
            throw .io(path: shown, errno: errno, what: "cannot flush directory to disk")
        }
    }

    /// Flushes the directories `base/rel` for every `rel` given and each of their ancestors up to `base` itself, once,
    /// deepest first. Opened through their parents (`PathAt`), so names of any bytes at any depth are flushed.
    static func syncAncestors(_ base: String, _ rels: some Sequence<String>) throws(StoreError) {
        var all = Set<String>([""])
        for var r in rels {
            while !r.isEmpty, all.insert(r).inserted { r = PathBytes.parent(r) ?? "" }
        }
        for r in all.sorted(by: { $0.utf8.count > $1.utf8.count }) { try syncDirectory(base, r) }
    }

    /// Flushes each directory once, deepest first, so a parent's entry is flushed after its children's contents.
    static func syncDirectories(_ paths: some Sequence<String>) throws(StoreError) {
        for p in Set(paths).sorted(by: { $0.utf8.count > $1.utf8.count }) { try syncDirectory(p) }
    }

    /// The directory holding `path` ("/" for a name at the top).
    static func parent(_ path: String) -> String {
        let p = PathBytes.split(path).parent
        return p.isEmpty ? (path.hasPrefix("/") ? "/" : ".") : p
    }

    /// Writes `data` to a new file at `path` and flushes it; the caller flushes the directory.
    static func writeFile(_ path: String, _ data: Data, mode: mode_t = 0o644) throws(StoreError) {
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode)
        guard fd >= 0 else { throw .io(path: path, errno: errno, what: "cannot create") }
        defer { close(fd) }
        let failure: Int32? = data.withUnsafeBytes { b in
            var off = 0
            while off < b.count {
                let n = write(fd, b.baseAddress! + off, b.count - off)
                if n < 0 { if errno == EINTR { continue }; return errno }
                off += n
            }
            return nil
        }
        if let failure { throw .io(path: path, errno: failure, what: "cannot write") }
        try sync(fd: fd, path: path)
    }
}

extension Store {
    /// Flushes files the store did not write itself (a Flink checkpoint's, which Flink closes without fsync) and the
    /// directories naming them, before a commit lists them: a listed snapshot must survive a power cut whole.
    /// Files that are not there are left to `verify` to report.
    public func flushAdopted(_ relativePaths: [String]) throws(StoreError) {
        var directories = Set<String>()
        for rel in relativePaths {
            let abs = root.path + "/" + rel
            let fd = Glibc.open(abs, O_RDONLY | O_CLOEXEC)
            guard fd >= 0 else { continue }
            defer { close(fd) }
            try Durability.sync(fd: fd, path: abs)
            var p = rel
            while let parent = PathBytes.parent(p) {
                directories.insert(root.path + "/" + parent)
                p = parent
            }
        }
        try Durability.syncDirectories(directories)
    }
}
