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
    /// A device node's device number.
    public var rdev: UInt64?
    /// Owner and extended attributes (nil: the source does not know them).
    public var uid: UInt32?
    public var gid: UInt32?
    public var xattrs: ExtendedAttributes?
    /// For a file that is a hard link of one listed earlier (same inode): that one's path. The two share one object.
    public var hardLinkTo: String?
    /// The bytes a file occupies on disk (`st_blocks` × 512), when the source knows: fewer than its length means it
    /// has holes, and its copy is checksummed by `SparseDigest` rather than by a SHA-256 of every byte.
    public var allocated: Int64?

    public init(path: String, type: EntryType, size: Int64, mode: UInt32, mtimeNanos: Int64, symlinkTarget: String? = nil, sha256: String? = nil,
                rdev: UInt64? = nil, uid: UInt32? = nil, gid: UInt32? = nil, xattrs: ExtendedAttributes? = nil) {
        self.path = path; self.type = type; self.size = size; self.mode = mode; self.mtimeNanos = mtimeNanos
        self.symlinkTarget = symlinkTarget; self.sha256 = sha256; self.rdev = rdev
        self.uid = uid; self.gid = gid; self.xattrs = xattrs
    }
}

/// What a record (a canonical manifest) says an entry's metadata is, over what its copy on disk shows: a tree copied
/// with a plain `cp` has lost owners, times and attributes that the manifest still has.
public struct RecordedMetadata: Sendable, Hashable {
    public var mode: UInt32
    public var uid: UInt32?
    public var gid: UInt32?
    public var mtimeNanos: Int64
    public var xattrs: ExtendedAttributes?
    /// The entry is a hard link of this earlier one, even where the copy on disk has lost the link.
    public var hardLinkTo: String?

    public init(mode: UInt32, uid: UInt32?, gid: UInt32?, mtimeNanos: Int64, xattrs: ExtendedAttributes?, hardLinkTo: String? = nil) {
        self.mode = mode; self.uid = uid; self.gid = gid; self.mtimeNanos = mtimeNanos; self.xattrs = xattrs
        self.hardLinkTo = hardLinkTo
    }
}

/// A run of a file's bytes as a source reads them: data, or a hole (zeros the source did not read).
public enum SourceChunk {
    case data(UnsafeRawBufferPointer)
    case hole(Int64)
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
    /// `scan()`, and what the source has that no snapshot can hold.
    func scanReporting() throws(StoreError) -> SourceScan
    /// Streams the bytes of `entry` to `sink`, returning the entry as it really was when copied.
    func read(_ entry: SourceEntry, into sink: (UnsafeRawBufferPointer) throws -> Void) throws -> SourceEntry
    /// `read`, with holes handed on as holes rather than as zeros, so a copy of a sparse file costs its data, not
    /// its length. By default every run is data.
    func readExtents(_ entry: SourceEntry, into sink: (SourceChunk) throws -> Void) throws -> SourceEntry
    /// The mode and owner of the tree's root, recorded with the snapshot so the mount keeps out whom it kept out.
    func rootOwnership() -> RootOwnership?
}

extension SnapshotSource {
    public func rootOwnership() -> RootOwnership? { nil }
    public func readExtents(_ entry: SourceEntry, into sink: (SourceChunk) throws -> Void) throws -> SourceEntry {
        try read(entry) { try sink(.data($0)) }
    }
}

extension SnapshotSource {
    public func scanReporting() throws(StoreError) -> SourceScan { SourceScan(entries: try scan()) }
}

/// What a source offers to a snapshot, and what it has that the snapshot will not hold.
public struct SourceScan: Sendable {
    public var entries: [SourceEntry] = []
    public var omitted: [Omission] = []
    public init(entries: [SourceEntry] = [], omitted: [Omission] = []) { self.entries = entries; self.omitted = omitted }
}

/// A directory tree on this machine. For a live state directory, every file is checked before and after its copy,
/// so a file written during the copy is copied again rather than kept half-copied.
public struct FileTreeSource: SnapshotSource {
    public let root: URL
    /// Checksums the tree must match (an exported canonical snapshot), by path.
    public let expected: [String: String]
    /// `SparseDigest`s the tree must match, by path (a stored object whose whole-content SHA-256 is not known).
    public var expectedSparse: [String: String] = [:]
    /// What an earlier snapshot of this tree already did not hold (an exported tree's manifest says so).
    public var inherited: [Omission] = []
    /// Metadata recorded for the tree (an exported tree's manifest), by path, taken over what the files show.
    public var recorded: [String: RecordedMetadata] = [:]
    /// The root directory as recorded, taken over what the directory shows.
    public var recordedRoot: RootOwnership?

    public init(root: URL, expected: [String: String] = [:]) {
        self.root = root.standardizedFileURL
        self.expected = expected
    }

    public var description: String { root.path }
    public var allowsReuse: Bool { expected.isEmpty && expectedSparse.isEmpty }
    public func rootOwnership() -> RootOwnership? { recordedRoot ?? RootOwnership.of(directory: root.path) }

    public func scan() throws(StoreError) -> [SourceEntry] { try scanReporting().entries }

    /// Every directory, file, symlink, FIFO and device node below the root, at any depth; sockets, which no format
    /// can hold, are returned as omissions so the snapshot can say so.
    public func scanReporting() throws(StoreError) -> SourceScan {
        var st = stat()
        guard lstat(root.path, &st) == 0 else { throw .io(path: root.path, errno: errno, what: "cannot read state directory") }
        guard (st.st_mode & S_IFMT) == S_IFDIR else { throw .badInput("\(root.path) is not a directory") }
        var out = SourceScan(omitted: inherited)
        var linkFailure: (Int32, String)?
        // The first path seen of each file with more than one name: the others are its hard links.
        var firstNames: [UInt64: [UInt64: String]] = [:]
        let failure = PathAt.walk(root.path) { p, st, dirFD, name in
            let mtime = Int64(st.st_mtim.tv_sec) * 1_000_000_000 + Int64(st.st_mtim.tv_nsec)
            var e: SourceEntry
            switch st.st_mode & S_IFMT {
            case S_IFDIR:
                e = SourceEntry(path: p, type: .directory, size: 0, mode: UInt32(st.st_mode), mtimeNanos: mtime)
            case S_IFREG:
                e = SourceEntry(path: p, type: .file, size: Int64(st.st_size), mode: UInt32(st.st_mode), mtimeNanos: mtime, sha256: expected[p])
                e.allocated = Int64(st.st_blocks) * 512
                if st.st_nlink > 1 {
                    let dev = UInt64(st.st_dev), ino = UInt64(st.st_ino)
                    if let first = firstNames[dev]?[ino] { e.hardLinkTo = first } else { firstNames[dev, default: [:]][ino] = p }
                }
            case S_IFLNK:
                guard let target = PathAt.readlink(in: dirFD, name) else {
                    if errno != ENOENT && linkFailure == nil { linkFailure = (errno, p) }
                    return
                }
                e = SourceEntry(path: p, type: .symlink, size: Int64(PathBytes.kernel(target).count), mode: UInt32(st.st_mode),
                                mtimeNanos: mtime, symlinkTarget: target)
            case S_IFIFO:
                e = SourceEntry(path: p, type: .fifo, size: 0, mode: UInt32(st.st_mode), mtimeNanos: mtime)
            case S_IFCHR, S_IFBLK:
                e = SourceEntry(path: p, type: .device, size: 0, mode: UInt32(st.st_mode), mtimeNanos: mtime, rdev: UInt64(st.st_rdev))
            default:
                out.omitted.append(Omission(path: p, mode: UInt32(st.st_mode)))
                return
            }
            e.uid = st.st_uid; e.gid = st.st_gid
            e.xattrs = ExtendedAttributes.read(in: dirFD, name)
            out.entries.append(applyRecorded(e))
        }
        if let (e, p) = failure ?? linkFailure {
            throw .io(path: root.path + "/" + PathBytes.printable(p), errno: e, what: "cannot read")
        }
        return out
    }

    public func read(_ entry: SourceEntry, into sink: (UnsafeRawBufferPointer) throws -> Void) throws -> SourceEntry {
        try readExtents(entry) { chunk in
            switch chunk {
            case .data(let bytes): try sink(bytes)
            case .hole(var n):
                while n > 0 {
                    let k = Int(min(Int64(SparseWriter.zeros.count), n))
                    try sink(UnsafeRawBufferPointer(rebasing: SparseWriter.zeros[0..<k]))
                    n -= Int64(k)
                }
            }
        }
    }

    public func readExtents(_ entry: SourceEntry, into sink: (SourceChunk) throws -> Void) throws -> SourceEntry {
        let abs = root.path + "/" + PathBytes.printable(entry.path)
        let fd = PathAt.open(root.path, entry.path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)
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
        var hasher = entry.sha256 != nil && !expected.isEmpty ? SHA256() : nil
        let wantSparse = expectedSparse[entry.path]
        var sparse = wantSparse == nil ? nil : SparseDigest()
        // Holes are not read: where SEEK_DATA says the next data starts further on, the hole is handed on as one,
        // so a sparse file costs its data, not its length, in reads (a SHA-256 checked here still covers every byte).
        // Asked only of a file that occupies fewer blocks than its length needs: most have no hole.
        var seekable = Int64(before.st_blocks) * 512 < Int64(before.st_size)
        func handOn(_ chunk: UnsafeRawBufferPointer) throws {
            hasher?.update(bufferPointer: chunk)
            sparse?.update(chunk)
            try sink(.data(chunk))
            total += Int64(chunk.count)
        }
        while true {
            if seekable {
                let data = lseek(fd, off_t(total), SparseSeek.data)
                // ENXIO: nothing but a hole from here to the end.
                let holeEnd = data >= 0 ? Int64(data) : (errno == ENXIO ? Int64(before.st_size) : -1)
                if data < 0 && errno != ENXIO { seekable = false }
                if holeEnd > total {
                    let n = holeEnd - total
                    hasher?.updateZeros(n)
                    sparse?.skip(n)
                    try sink(.hole(n))
                    total = holeEnd
                }
            }
            let n = pread(fd, buffer.baseAddress, buffer.count, off_t(total))
            if n < 0 { if errno == EINTR { continue }; throw SourceProblem.unreadable(path: abs, errno: errno) }
            if n == 0 { break }
            try handOn(UnsafeRawBufferPointer(rebasing: buffer[0..<n]))
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
        if let want = wantSparse, var s = sparse {
            let got = s.finalize()
            if got != want { throw SourceProblem.checksumMismatch(path: entry.path, expected: "sparse digest " + want, actual: got) }
        }
        var e = entry
        e.size = total
        e.allocated = Int64(after.st_blocks) * 512
        e.mode = UInt32(after.st_mode)
        e.mtimeNanos = Int64(after.st_mtim.tv_sec) * 1_000_000_000 + Int64(after.st_mtim.tv_nsec)
        e.uid = after.st_uid; e.gid = after.st_gid
        return applyRecorded(e)
    }

    /// The entry with what `recorded` says of it in place of what its copy on disk showed; the type bits stay the disk's.
    private func applyRecorded(_ entry: SourceEntry) -> SourceEntry {
        guard let r = recorded[entry.path] else { return entry }
        var e = entry
        e.mode = (e.mode & UInt32(S_IFMT)) | (r.mode & 0o7777)
        e.mtimeNanos = r.mtimeNanos
        if let u = r.uid { e.uid = u }
        if let g = r.gid { e.gid = g }
        if let x = r.xattrs { e.xattrs = x }
        if let l = r.hardLinkTo { e.hardLinkTo = l }
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

    /// What the snapshot itself did not hold stays recorded as not held in what is made from it.
    public func scanReporting() throws(StoreError) -> SourceScan {
        SourceScan(entries: try scan(), omitted: try store.omissions(of: snapshot.id))
    }

    public func scan() throws(StoreError) -> [SourceEntry] {
        var first: [ObjectID: String] = [:]
        return byPath.values.sorted { $0.path < $1.path }.map {
            var e = SourceEntry(path: $0.path, type: $0.type, size: $0.size, mode: $0.mode, mtimeNanos: $0.mtimeNanos,
                                symlinkTarget: $0.symlinkTarget, sha256: $0.sha256, rdev: $0.rdev, uid: $0.uid, gid: $0.gid, xattrs: $0.xattrs)
            e.allocated = $0.blocks.map { $0 * 512 }
            // Two names of one object in one snapshot are hard links of one file.
            if $0.type == .file, let o = $0.object {
                if let f = first[o] { e.hardLinkTo = f } else { first[o] = $0.path }
            }
            return e
        }
    }

    public func read(_ entry: SourceEntry, into sink: (UnsafeRawBufferPointer) throws -> Void) throws -> SourceEntry {
        let (source, e) = try objectSource(entry)
        return try source.read(e, into: sink).withPath(entry.path, as: entry)
    }

    public func readExtents(_ entry: SourceEntry, into sink: (SourceChunk) throws -> Void) throws -> SourceEntry {
        let (source, e) = try objectSource(entry)
        return try source.readExtents(e, into: sink).withPath(entry.path, as: entry)
    }

    /// The object's file as a source checked against the catalog's checksum.
    private func objectSource(_ entry: SourceEntry) throws -> (FileTreeSource, SourceEntry) {
        guard let e = byPath[entry.path], let op = e.objectPath else {
            throw SourceProblem.vanished(entry.path)
        }
        // The sparse digest when there is one: it checks the same bytes without hashing the holes.
        var source = FileTreeSource(root: store.root, expected: e.sparseDigest == nil ? e.sha256.map { [op: $0] } ?? [:] : [:])
        if let d = e.sparseDigest { source.expectedSparse = [op: d] }
        return (source, SourceEntry(path: op, type: .file, size: e.size, mode: e.mode, mtimeNanos: e.mtimeNanos, sha256: e.sha256))
    }
}

extension SourceEntry {
    /// The bytes' entry under the path and with the metadata of `recorded`: what an object's own file shows is the store's.
    func withPath(_ p: String, as recorded: SourceEntry) -> SourceEntry {
        var e = self; e.path = p; e.mode = recorded.mode; e.mtimeNanos = recorded.mtimeNanos
        e.uid = recorded.uid; e.gid = recorded.gid; e.xattrs = recorded.xattrs
        return e
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
