import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// What a store knows of one of its files without reading it.
public struct StoreFileStat: Sendable, Hashable {
    public var size: Int64
    /// `st_mode`: a regular file's type bits and permissions (an object store's files are regular, 0644).
    public var mode: UInt32
    public var mtimeNanos: Int64
    /// The object's ETag on an object store; nil on a file system.
    public var etag: String?

    public init(size: Int64, mode: UInt32 = UInt32(S_IFREG) | 0o644, mtimeNanos: Int64, etag: String? = nil) {
        self.size = size
        self.mode = mode
        self.mtimeNanos = mtimeNanos
        self.etag = etag
    }

    public var isRegularFile: Bool { (mode & UInt32(S_IFMT)) == UInt32(S_IFREG) }
    public var mtime: Double { Double(mtimeNanos) / 1e9 }

    /// The same facts as a `stat` record, for code that builds catalog entries from one.
    public var asStat: stat {
        var st = stat()
        st.st_size = Int(size)
        st.st_mode = mode
        st.st_mtim = timespec(tv_sec: Int(mtimeNanos / 1_000_000_000), tv_nsec: Int(mtimeNanos % 1_000_000_000))
        return st
    }

    init(_ st: stat) {
        self.init(size: Int64(st.st_size), mode: UInt32(st.st_mode),
                  mtimeNanos: Int64(st.st_mtim.tv_sec) * 1_000_000_000 + Int64(st.st_mtim.tv_nsec))
    }
}

/// The files below one directory (store-relative), as one listing returned them.
public struct StoreFileListing: Sendable {
    /// Store-relative path → what the listing said of it.
    public var files: [String: StoreFileStat] = [:]
    /// Store-relative directories met immediately below the listed one (a listing that did not descend), or every
    /// directory the files imply (one that did).
    public var directories: Set<String> = []

    public init(files: [String: StoreFileStat] = [:], directories: Set<String> = []) {
        self.files = files
        self.directories = directories
    }
}

/// What a store's file accesses cost: the requests an object store was sent, and the bytes its listings returned.
/// A file-system store counts nothing here.
public struct StoreFilesCost: Codable, Sendable, Hashable {
    public var listRequests: Int = 0
    public var listBytes: Int64 = 0
    /// HEAD requests (a file a listing did not show, asked before it counts as missing).
    public var headRequests: Int = 0
    public var getRequests: Int = 0
    public var getBytes: Int64 = 0
    public var deleteRequests: Int = 0

    public init() {}

    public static func - (a: StoreFilesCost, b: StoreFilesCost) -> StoreFilesCost {
        var d = StoreFilesCost()
        d.listRequests = a.listRequests - b.listRequests
        d.listBytes = a.listBytes - b.listBytes
        d.headRequests = a.headRequests - b.headRequests
        d.getRequests = a.getRequests - b.getRequests
        d.getBytes = a.getBytes - b.getBytes
        d.deleteRequests = a.deleteRequests - b.deleteRequests
        return d
    }
}

/// Where a store's files are and how to reach them: the seam between the store's rules (which files a snapshot
/// needs, which may go) and the place the bytes live. A local or network-mounted file system (`LocalStoreFiles`,
/// the store's root) or an object store (an S3 bucket prefix, outside this module).
///
/// Paths are store-relative. Nothing here decides anything: a listing is a hint, `stat` of a path a listing did not
/// show asks the place itself, and only the catalog and `_metadata` decide what is removed.
public protocol StoreFiles: Sendable {
    /// The files are on this machine's file system under `Store.root`: the engines keep their POSIX fast paths
    /// (directory stamps, descriptor walks) and call nothing below.
    var isLocal: Bool { get }
    /// How a user names the place (`/srv/flink-store`, `s3://bucket/prefix`), for messages.
    var location: String { get }
    /// A store-relative path as an absolute path or URI, in the form Flink's `_metadata` names it.
    func absolute(_ relative: String) -> String
    /// The store-relative path of an absolute path or URI, nil when it lies outside the store.
    func relative(ofAbsolute path: String) -> String?
    /// One file: nil when it is not there. Never answered from a listing alone.
    func stat(_ relative: String) throws(StoreError) -> StoreFileStat?
    /// Many files at once (an object store lists once and asks, one by one, only for what the listing lacks).
    func stat(_ relatives: [String]) throws(StoreError) -> [StoreFileStat?]
    /// A whole file's bytes; refuses one larger than `limit` before reading it.
    func read(_ relative: String, limit: Int) throws(StoreError) -> Data
    /// The files below `directory` ("" for the whole store): every file below it when `recursive`, else its files
    /// and the directories immediately below it. With `startAfter` (a store-relative path), only what sorts after
    /// it in the store's own order (an object store's key order): the way to ask only for what is new.
    /// Only names in `directory` that start with `namePrefix` are listed (`chk-` for Flink's checkpoint directories).
    func list(_ directory: String, namePrefix: String, recursive: Bool, startAfter: String?) throws(StoreError) -> StoreFileListing
    /// Removes files (never directories); a file already gone is removed. Returns the paths that could not be
    /// removed with why; throws when the place refused the whole request (no permission, unreachable), so nothing
    /// is taken as done.
    func remove(_ relatives: [String]) throws(StoreError) -> [String: String]
    /// Copies one file to another path of the store (an object store copies server-side: it cannot rename).
    func copy(_ from: String, to: String) throws(StoreError)
    /// What this handle's accesses have cost so far.
    var cost: StoreFilesCost { get }
}

extension StoreFiles {
    public func stat(_ relatives: [String]) throws(StoreError) -> [StoreFileStat?] {
        var out: [StoreFileStat?] = []
        out.reserveCapacity(relatives.count)
        for r in relatives { out.append(try stat(r)) }
        return out
    }
    public var cost: StoreFilesCost { StoreFilesCost() }

    public func list(_ directory: String, recursive: Bool, startAfter: String? = nil) throws(StoreError) -> StoreFileListing {
        try list(directory, namePrefix: "", recursive: recursive, startAfter: startAfter)
    }
}

/// How a store whose files are not on the local file system is opened: named by the scheme its catalog records
/// (`meta.files_scheme`), given to `Store.open`/`Store.create` as engine rules are.
public protocol StoreFilesBackend: Sendable {
    /// The scheme the catalog records, e.g. `s3`.
    var scheme: String { get }
    /// The files of an opened store, from the settings in its catalog. May refuse (another owner holds the place).
    func files(for store: Store) throws(StoreError) -> any StoreFiles
}

/// A store's files on this machine's file system, under the store's root: what every store had before object
/// stores, unchanged.
public struct LocalStoreFiles: StoreFiles {
    public let root: String

    public init(root: String) { self.root = root }

    public var isLocal: Bool { true }
    public var location: String { root }

    public func absolute(_ relative: String) -> String { relative.isEmpty ? root : root + "/" + relative }

    public func relative(ofAbsolute path: String) -> String? { PathBytes.relative(path, under: root) }

    public func stat(_ relative: String) throws(StoreError) -> StoreFileStat? {
        var st = Glibc.stat()
        guard PathAt.stat(root, relative, &st) == 0 else {
            if errno == ENOENT || errno == ENOTDIR { return nil }
            throw .io(path: absolute(relative), errno: errno, what: "cannot stat")
        }
        return StoreFileStat(st)
    }

    public func read(_ relative: String, limit: Int) throws(StoreError) -> Data {
        let path = absolute(relative)
        guard let st = try stat(relative) else { throw .io(path: path, errno: ENOENT, what: "cannot read") }
        guard st.size <= Int64(limit) else { throw .corrupt("\(path) is \(st.size) bytes, more than the \(limit) allowed") }
        guard let data = FileManager.default.contents(atPath: path) else { throw .io(path: path, errno: EIO, what: "cannot read") }
        return data
    }

    public func list(_ directory: String, namePrefix: String, recursive: Bool, startAfter: String?) throws(StoreError) -> StoreFileListing {
        var out = StoreFileListing()
        let names = (try? FileManager.default.contentsOfDirectory(atPath: absolute(directory))) ?? []
        if recursive {
            for name in names where name.hasPrefix(namePrefix) {
                let top = directory.isEmpty ? name : directory + "/" + name
                var st = Glibc.stat()
                guard PathAt.lstat(root, top, &st) == 0 else { continue }
                guard (st.st_mode & S_IFMT) == S_IFDIR else { out.files[top] = StoreFileStat(st); continue }
                out.directories.insert(top)
                PathAt.walk(root, top) { p, st, _, _ in
                    if (st.st_mode & S_IFMT) == S_IFDIR { out.directories.insert(p) } else { out.files[p] = StoreFileStat(st) }
                }
            }
        } else {
            for name in names where name.hasPrefix(namePrefix) {
                let p = directory.isEmpty ? name : directory + "/" + name
                var st = Glibc.stat()
                guard PathAt.lstat(root, p, &st) == 0 else { continue }
                if (st.st_mode & S_IFMT) == S_IFDIR { out.directories.insert(p) } else { out.files[p] = StoreFileStat(st) }
            }
        }
        if let startAfter {
            out.files = out.files.filter { $0.key > startAfter }
            out.directories = out.directories.filter { $0 > startAfter }
        }
        return out
    }

    public func copy(_ from: String, to: String) throws(StoreError) {
        do {
            if let parent = PathBytes.parent(to) {
                try FileManager.default.createDirectory(atPath: absolute(parent), withIntermediateDirectories: true)
            }
            try FileManager.default.copyItem(atPath: absolute(from), toPath: absolute(to))
        } catch { throw .io(path: absolute(to), errno: EIO, what: "cannot copy \(absolute(from)) to") }
    }

    public func remove(_ relatives: [String]) throws(StoreError) -> [String: String] {
        var failed: [String: String] = [:]
        for r in relatives where PathAt.unlink(root, r) != 0 && errno != ENOENT {
            failed[r] = String(cString: strerror(errno))
        }
        return failed
    }
}
