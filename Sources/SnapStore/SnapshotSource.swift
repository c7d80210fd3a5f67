import Foundation
import Crypto
#if canImport(Glibc)
import Glibc
#endif

/// One thing a source offers to a snapshot, at its logical path.
public struct SourceEntry: Sendable, Hashable {
    public var path: String
    public var type: EntryType
    public var size: Int64
    public var mode: UInt32
    public var mtimeNanos: Int64
    public var symlinkTarget: String?
    /// A checksum the source already knows (a stored snapshot, a canonical manifest); checked on copy.
    public var sha256: String?

    public init(path: String, type: EntryType, size: Int64, mode: UInt32, mtimeNanos: Int64, symlinkTarget: String? = nil, sha256: String? = nil) {
        self.path = path; self.type = type; self.size = size; self.mode = mode; self.mtimeNanos = mtimeNanos
        self.symlinkTarget = symlinkTarget; self.sha256 = sha256
    }
}

/// Why a copy could not use a file as it was scanned.
public enum SourceProblem: Error, Sendable {
    /// The file was removed after the scan: the snapshot is retried from a fresh scan.
    case vanished(String)
    /// The file kept changing while it was copied: a half-copied file must never be part of a snapshot.
    case changing(String)
    /// The bytes do not match the checksum the source promised.
    case checksumMismatch(path: String, expected: String, actual: String)
    case unreadable(path: String, errno: Int32)
}

/// Where a snapshot's content comes from: a live state directory, another snapshot, an exported canonical tree.
/// Sendable because a snapshot reads several files of one source at once.
public protocol SnapshotSource: Sendable {
    var description: String { get }
    /// Whether an unchanged file (same size and mtime as in the base snapshot) may be referenced instead of copied.
    var allowsReuse: Bool { get }
    func scan() throws(StoreError) -> [SourceEntry]
    /// Streams the bytes of `entry` to `sink`, returning the entry as it really was when copied.
    func read(_ entry: SourceEntry, into sink: (UnsafeRawBufferPointer) throws -> Void) throws -> SourceEntry
    /// The mode and owner of the tree's root, recorded with the snapshot so the mount keeps out whom it kept out.
    func rootOwnership() -> RootOwnership?
}

extension SnapshotSource {
    public func rootOwnership() -> RootOwnership? { nil }
}

/// A directory tree on this machine. For a live state directory, every file is checked before and after its copy,
/// so a file written during the copy is copied again rather than kept half-copied.
public struct FileTreeSource: SnapshotSource {
    public let root: URL
    /// Checksums the tree must match (an exported canonical snapshot), by path.
    public let expected: [String: String]

    public init(root: URL, expected: [String: String] = [:]) {
        self.root = root.standardizedFileURL
        self.expected = expected
    }

    public var description: String { root.path }
    public var allowsReuse: Bool { expected.isEmpty }
    public func rootOwnership() -> RootOwnership? { RootOwnership.of(directory: root.path) }

    public func scan() throws(StoreError) -> [SourceEntry] {
        var out: [SourceEntry] = []
        var st = stat()
        guard lstat(root.path, &st) == 0 else { throw .io(path: root.path, errno: errno, what: "cannot read state directory") }
        guard (st.st_mode & S_IFMT) == S_IFDIR else { throw .badInput("\(root.path) is not a directory") }
        try walk("", into: &out)
        return out
    }

    private func walk(_ rel: String, into out: inout [SourceEntry]) throws(StoreError) {
        let dirPath = rel.isEmpty ? root.path : root.path + "/" + rel
        guard let dir = opendir(dirPath) else {
            if errno == ENOENT && !rel.isEmpty { return }
            throw .io(path: dirPath, errno: errno, what: "cannot list")
        }
        defer { closedir(dir) }
        var names: [String] = []
        while let ent = readdir(dir) {
            let name = withUnsafeBytes(of: ent.pointee.d_name) { raw in
                String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self)
            }
            if name == "." || name == ".." { continue }
            names.append(name)
        }
        for name in names.sorted() {
            let p = rel.isEmpty ? name : rel + "/" + name
            let abs = root.path + "/" + p
            var st = stat()
            guard lstat(abs, &st) == 0 else {
                if errno == ENOENT { continue }
                throw .io(path: abs, errno: errno, what: "cannot stat")
            }
            let mtime = Int64(st.st_mtim.tv_sec) * 1_000_000_000 + Int64(st.st_mtim.tv_nsec)
            switch st.st_mode & S_IFMT {
            case S_IFDIR:
                out.append(SourceEntry(path: p, type: .directory, size: 0, mode: UInt32(st.st_mode), mtimeNanos: mtime))
                try walk(p, into: &out)
            case S_IFREG:
                out.append(SourceEntry(path: p, type: .file, size: Int64(st.st_size), mode: UInt32(st.st_mode), mtimeNanos: mtime, sha256: expected[p]))
            case S_IFLNK:
                var buf = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
                let n = readlink(abs, &buf, buf.count - 1)
                guard n >= 0 else { throw .io(path: abs, errno: errno, what: "cannot read link") }
                let target = String(decoding: buf[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
                out.append(SourceEntry(path: p, type: .symlink, size: Int64(n), mode: UInt32(st.st_mode), mtimeNanos: mtime,
                                       symlinkTarget: target))
            default:
                continue // sockets, fifos and devices are not state
            }
        }
    }

    public func read(_ entry: SourceEntry, into sink: (UnsafeRawBufferPointer) throws -> Void) throws -> SourceEntry {
        let abs = root.path + "/" + entry.path
        let fd = open(abs, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)
        guard fd >= 0 else {
            if errno == ENOENT { throw SourceProblem.vanished(entry.path) }
            throw SourceProblem.unreadable(path: abs, errno: errno)
        }
        defer { close(fd) }
        var before = stat()
        guard fstat(fd, &before) == 0 else { throw SourceProblem.unreadable(path: abs, errno: errno) }
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 20, alignment: 16)
        defer { buffer.deallocate() }
        var total: Int64 = 0
        var hasher = expected.isEmpty ? nil : SHA256()
        while true {
            let n = Glibc.read(fd, buffer.baseAddress, buffer.count)
            if n < 0 { if errno == EINTR { continue }; throw SourceProblem.unreadable(path: abs, errno: errno) }
            if n == 0 { break }
            let chunk = UnsafeRawBufferPointer(rebasing: buffer[0..<n])
            hasher?.update(bufferPointer: chunk)
            try sink(chunk)
            total += Int64(n)
        }
        var after = stat()
        guard fstat(fd, &after) == 0 else { throw SourceProblem.unreadable(path: abs, errno: errno) }
        // Unlinked while open: the bytes read are whole, but the file is no longer part of the state.
        if after.st_nlink == 0 { throw SourceProblem.vanished(entry.path) }
        if before.st_size != after.st_size || before.st_mtim.tv_sec != after.st_mtim.tv_sec
            || before.st_mtim.tv_nsec != after.st_mtim.tv_nsec || before.st_ctim.tv_nsec != after.st_ctim.tv_nsec
            || total != Int64(after.st_size) {
            throw SourceProblem.changing(entry.path)
        }
        if let want = entry.sha256, let h = hasher {
            let got = h.finalize().hexString
            if got != want { throw SourceProblem.checksumMismatch(path: entry.path, expected: want, actual: got) }
        }
        var e = entry
        e.size = total
        e.mode = UInt32(after.st_mode)
        e.mtimeNanos = Int64(after.st_mtim.tv_sec) * 1_000_000_000 + Int64(after.st_mtim.tv_nsec)
        return e
    }
}

/// A snapshot already in the store, read back through its objects (for `convert`).
public struct StoredSnapshotSource: SnapshotSource {
    public let store: Store
    public let snapshot: Snapshot
    private let byPath: [String: SnapshotEntry]

    public init(store: Store, snapshot: Snapshot) throws(StoreError) {
        self.store = store
        self.snapshot = snapshot
        var m: [String: SnapshotEntry] = [:]
        for e in try store.entries(of: snapshot.id) { m[e.path] = e }
        byPath = m
    }

    public var description: String { "snapshot \(snapshot.name)" }
    public var allowsReuse: Bool { false }
    public func rootOwnership() -> RootOwnership? { snapshot.root }

    public func scan() throws(StoreError) -> [SourceEntry] {
        byPath.values.sorted { $0.path < $1.path }.map {
            SourceEntry(path: $0.path, type: $0.type, size: $0.size, mode: $0.mode, mtimeNanos: $0.mtimeNanos,
                        symlinkTarget: $0.symlinkTarget, sha256: $0.sha256)
        }
    }

    public func read(_ entry: SourceEntry, into sink: (UnsafeRawBufferPointer) throws -> Void) throws -> SourceEntry {
        guard let e = byPath[entry.path], let op = e.objectPath else {
            throw SourceProblem.vanished(entry.path)
        }
        return try FileTreeSource(root: store.root, expected: e.sha256.map { [op: $0] } ?? [:])
            .read(SourceEntry(path: op, type: .file, size: e.size, mode: e.mode, mtimeNanos: e.mtimeNanos, sha256: e.sha256), into: sink)
            .withPath(entry.path, mode: entry.mode, mtime: entry.mtimeNanos)
    }
}

extension SourceEntry {
    func withPath(_ p: String, mode: UInt32, mtime: Int64) -> SourceEntry {
        var e = self; e.path = p; e.mode = mode; e.mtimeNanos = mtime; return e
    }
}

extension Sequence where Element == UInt8 {
    public var hexString: String {
        let digits = Array("0123456789abcdef".utf8)
        var out = [UInt8]()
        for b in self { out.append(digits[Int(b >> 4)]); out.append(digits[Int(b & 0xf)]) }
        return String(decoding: out, as: UTF8.self)
    }
}
