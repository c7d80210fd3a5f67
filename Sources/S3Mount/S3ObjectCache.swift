import Crypto
import Foundation
import Logging
import NIOCore
import S3Client
import SnapFileOps
#if canImport(Glibc)
import Glibc
#endif

/// Stored objects read from S3 through an on-disk cache, for a mount whose store keeps its files in a bucket.
///
/// A read names a store-relative path and a byte range. The object's version (key, size, ETag) comes from a listing
/// of its directory or a HEAD, once per mount; its cache entry is a local file named after that version, so an object
/// that changed on the server is a different entry and the old bytes are never served for it. The bytes a read needs
/// are fetched by ranged GETs of fixed-size chunks straight into the entry's file, with a few chunks ahead when the
/// reads of an object are sequential, and the read then gets that file's descriptor: the kernel adapter splices from
/// it exactly as from a file of a local store.
///
/// Crash safety: an entry is written under `partial/` and moved to `objects/` (after `fdatasync`) only once every
/// chunk is in it. At start `partial/` is emptied and every file in `objects/` whose length differs from the length
/// its name records is removed, so a crash never leaves a torn entry to be served.
///
/// The cache is bounded by a byte limit (entries count their object's full length from the start), evicting the
/// least recently used entry that no read or fetch is using.
///
/// A failed GET (server gone, connection broken mid-body) fails the reads waiting on it with EIO; the next read of
/// those bytes fetches them again, so reads work once the server is back. Nothing waits without a bound: every
/// request has the client's timeouts and retries.
public final class S3ObjectCache: ObjectSource, @unchecked Sendable {
    public struct Settings: Sendable {
        /// Bytes one ranged GET fetches (the last chunk of an object is shorter).
        public var chunkSize: Int64 = 8 << 20
        /// Chunks fetched ahead of a sequential reader, in parallel with the one it waits for.
        public var readAheadChunks = 4
        /// Fetches in flight at once beyond the ones a read waits for (read-ahead stops here).
        public var maxReadAheadFetches = 16
        /// Descriptors of idle entries kept open; beyond this the least recently used are closed.
        public var idleDescriptors = 256

        public init() {}
    }

    /// One version of one object.
    struct Version: Sendable, Equatable {
        var key: String
        var size: Int64
        var etag: String

        /// The entry's file name: a hash of key and ETag, and the length, which a restart checks the file against.
        var name: String {
            let digest = SHA256.hash(data: Data("\(key)\u{0}\(etag)".utf8))
            return digest.prefix(16).map { String(format: "%02x", $0) }.joined() + "-\(size)"
        }
    }

    /// One cache entry; touched only under `lock`.
    final class Entry: @unchecked Sendable {
        let name: String
        var version: Version?
        var chunks: ChunkMap
        var path: String
        var fd: Int32 = -1
        var complete: Bool
        /// The moment its last chunk arrived until it is moved to `objects/`.
        var finishing = false
        /// The object changed on the server: evicted as soon as nothing uses it.
        var stale = false
        /// The last chunk a read asked for, to tell sequential readers (who get read-ahead) from others.
        var lastChunkRead = -1

        init(name: String, version: Version?, chunks: ChunkMap, path: String, complete: Bool) {
            self.name = name
            self.version = version
            self.chunks = chunks
            self.path = path
            self.complete = complete
        }
    }

    struct Counts {
        var getRequests: Int64 = 0
        var getFailures: Int64 = 0
        var bytesFetched: Int64 = 0
        var headRequests: Int64 = 0
        var listRequests: Int64 = 0
        var readsFromCache: Int64 = 0
        var readsFetching: Int64 = 0
        var evictions: Int64 = 0
        var changedObjects: Int64 = 0
    }

    public let files: S3StoreFiles
    public let directory: URL
    public let settings: Settings
    let logger = Logger(label: "snapfs.s3cache")
    private let objectsDir: String
    private let partialDir: String

    /// Guards everything below; readers wait on it for their bytes, fetches broadcast progress.
    private let lock = NSCondition()
    private var versions: [String: Version] = [:]
    private var listedDirectories: Set<String> = []
    private var entries: [String: Entry] = [:]
    private var index: CacheIndex<String>
    private var counts = Counts()
    private var openDescriptors = 0
    private var readAheadInFlight = 0

    /// Opens (creating it if needed) the cache in `directory`, bounded by `limit` bytes, for the objects of `files`.
    public init(files: S3StoreFiles, directory: URL, limit: Int64, settings: Settings = Settings()) throws {
        self.files = files
        self.directory = directory
        self.settings = settings
        self.objectsDir = directory.appendingPathComponent("objects").path
        self.partialDir = directory.appendingPathComponent("partial").path
        self.index = CacheIndex(limit: limit)
        let fm = FileManager.default
        try fm.createDirectory(atPath: objectsDir, withIntermediateDirectories: true)
        // What a crash left half written is fetched again rather than trusted.
        try? fm.removeItem(atPath: partialDir)
        try fm.createDirectory(atPath: partialDir, withIntermediateDirectories: true)
        try rebuildIndex()
    }

    deinit {
        for e in entries.values where e.fd >= 0 { close(e.fd) }
    }

    /// Indexes the complete entries a previous run left, oldest use first; drops any whose length is not the one its
    /// name records, and evicts down to the limit (which may be smaller than it was).
    private func rebuildIndex() throws {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: objectsDir)) ?? []
        var found: [(name: String, size: Int64, mtime: Int)] = []
        for name in names {
            let path = objectsDir + "/" + name
            var st = stat()
            guard let dash = name.lastIndex(of: "-"), let size = Int64(name[name.index(after: dash)...]),
                  stat(path, &st) == 0, st.st_mode & S_IFMT == S_IFREG, Int64(st.st_size) == size else {
                logger.warning("removing a cache file that is not a complete entry", metadata: ["file": .string(path)])
                unlink(path)
                continue
            }
            found.append((name, size, st.st_mtim.tv_sec))
        }
        for f in found.sorted(by: { $0.mtime < $1.mtime }) {
            entries[f.name] = Entry(name: f.name, version: nil, chunks: .complete(size: f.size, chunkSize: settings.chunkSize),
                                    path: objectsDir + "/" + f.name, complete: true)
            for evicted in index.add(f.name, size: f.size, users: 0) { drop(evicted) }
        }
        if !found.isEmpty {
            logger.info("object cache reopened", metadata: ["entries": .stringConvertible(entries.count), "bytes": .stringConvertible(index.bytes)])
        }
    }

    // MARK: ObjectSource

    public func withDescriptor<R>(_ relativePath: String, covering range: Range<Int64>,
                                  _ body: (Int32) throws(FSError) -> R) throws(FSError) -> R {
        let version = try resolve(relativePath)
        let fd = try lease(version, relativePath, range)
        defer { release(version.name) }
        return try body(fd)
    }

    public func closeRemoved() -> Int { 0 }

    public var counters: [String: Int64] {
        lock.lock()
        defer { lock.unlock() }
        return ["getRequests": counts.getRequests, "getFailures": counts.getFailures, "bytesFetched": counts.bytesFetched,
                "headRequests": counts.headRequests, "listRequests": counts.listRequests,
                "readsFromCache": counts.readsFromCache, "readsFetching": counts.readsFetching,
                "evictions": counts.evictions, "changedObjects": counts.changedObjects,
                "cacheBytes": index.bytes, "cacheEntries": Int64(index.count), "cacheLimit": index.limit]
    }

    // MARK: Versions

    /// The version of the object at `relative`: known already, or from a listing of its directory (one request for
    /// all its siblings, which a `tar` reads next), or from a HEAD when the listing did not have it.
    private func resolve(_ relative: String) throws(FSError) -> Version {
        lock.lock()
        if let v = versions[relative] { lock.unlock(); return v }
        let dir = relative.lastIndex(of: "/").map { String(relative[..<$0]) } ?? ""
        let listed = listedDirectories.contains(dir)
        lock.unlock()
        let location = files.location, client = files.client
        if !listed {
            let prefix = dir.isEmpty ? location.listPrefix : location.key(dir) + "/"
            let listing = try S3Failure.blocking("list \(dir.isEmpty ? "the store" : dir)") {
                try await client.list(bucket: location.bucket, prefix: prefix, delimiter: "/")
            }
            lock.lock()
            counts.listRequests += Int64(listing.requests)
            for object in listing.objects {
                guard let rel = location.relative(ofKey: object.key), !rel.isEmpty, !rel.hasSuffix("/"), versions[rel] == nil else { continue }
                versions[rel] = Version(key: object.key, size: object.size, etag: object.etag)
            }
            listedDirectories.insert(dir)
            let v = versions[relative]
            lock.unlock()
            if let v { return v }
        }
        let key = location.key(relative)
        let head = try S3Failure.blocking("HEAD \(relative)") { try await client.head(bucket: location.bucket, key: key) }
        lock.lock()
        defer { lock.unlock() }
        counts.headRequests += 1
        guard let head else { throw .io("stored object \(relative) is not in \(location) (no key \(key))") }
        let v = Version(key: key, size: head.size, etag: head.etag)
        versions[relative] = v
        return v
    }

    // MARK: Entries

    /// Makes sure `range` of `version` is in its entry's file (fetching what is not, and starting read-ahead), and
    /// returns the entry's descriptor, leased until `release`.
    private func lease(_ version: Version, _ relative: String, _ range: Range<Int64>) throws(FSError) -> Int32 {
        lock.lock()
        defer { lock.unlock() }
        let entry: Entry
        if let existing = entries[version.name] {
            // A version found changed on the server is not served, even to a read that resolved it just before.
            guard !existing.stale else { throw S3Failure.changed(relative, files.location) }
            // An entry found on disk at start learns its key here (its name is the hash of this very version).
            if existing.version == nil { existing.version = version }
            entry = existing
            index.acquire(entry.name)
        } else {
            entry = try create(version)
        }
        do throws(FSError) {
            try openDescriptor(entry)
            let needed = entry.chunks.chunks(covering: range)
            if entry.chunks.covers(range) {
                counts.readsFromCache += 1
            } else {
                counts.readsFetching += 1
            }
            if !needed.isEmpty {
                // Sequential: this read continues where the last one was (or starts the object).
                let sequential = needed.lowerBound == 0 || (needed.lowerBound >= entry.lastChunkRead && needed.lowerBound <= entry.lastChunkRead + 1)
                entry.lastChunkRead = needed.upperBound - 1
                for i in needed where entry.chunks.needsFetch(i) { startFetch(entry, i, readAhead: false) }
                if sequential {
                    let ahead = needed.upperBound..<min(needed.upperBound + settings.readAheadChunks, entry.chunks.count)
                    for i in ahead where entry.chunks.needsFetch(i) && readAheadInFlight < settings.maxReadAheadFetches {
                        startFetch(entry, i, readAhead: true)
                    }
                }
            }
            var waited = entry.chunks.attempts(covering: range)
            while !entry.chunks.covers(range) {
                for i in needed {
                    switch entry.chunks.states[i] {
                    case .failed(let a, let reason) where waited[i] == nil || waited[i] == a:
                        throw S3Failure.readFailed(relative, files.location, reason)
                    case .fetching(let a, _):
                        waited[i] = a
                    case .missing, .failed:
                        startFetch(entry, i, readAhead: false)
                        if case .fetching(let a, _) = entry.chunks.states[i] { waited[i] = a }
                    case .present:
                        break
                    }
                }
                if entry.chunks.covers(range) { break }
                lock.wait()
            }
            return entry.fd
        } catch {
            releaseLocked(entry.name)
            throw error
        }
    }

    /// A new entry for `version`: its file under `partial/`, as long as the object (sparse until fetched), in use by
    /// the caller. A 0-byte object is complete at once.
    private func create(_ version: Version) throws(FSError) -> Entry {
        let empty = version.size == 0
        let path = (empty ? objectsDir : partialDir) + "/" + version.name
        let fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw .io("cannot create cache file \(path): \(String(cString: strerror(errno)))") }
        guard ftruncate(fd, off_t(version.size)) == 0 else {
            let e = errno
            close(fd)
            unlink(path)
            throw .io("cannot size cache file \(path): \(String(cString: strerror(e)))")
        }
        let entry = Entry(name: version.name, version: version, chunks: ChunkMap(size: version.size, chunkSize: settings.chunkSize),
                          path: path, complete: empty)
        entry.fd = fd
        openDescriptors += 1
        entries[entry.name] = entry
        for evicted in index.add(entry.name, size: version.size) { drop(evicted) }
        if index.overLimit {
            logger.debug("object cache over its limit while every entry is in use", metadata: ["bytes": .stringConvertible(index.bytes)])
        }
        return entry
    }

    private func openDescriptor(_ entry: Entry) throws(FSError) {
        guard entry.fd < 0 else { return }
        let fd = open(entry.path, O_RDWR | O_CLOEXEC)
        guard fd >= 0 else { throw .io("cannot open cache file \(entry.path): \(String(cString: strerror(errno)))") }
        entry.fd = fd
        openDescriptors += 1
    }

    private func release(_ name: String) {
        lock.lock()
        defer { lock.unlock() }
        releaseLocked(name)
    }

    private func releaseLocked(_ name: String) {
        for evicted in index.release(name) { drop(evicted) }
        if let e = entries[name], e.stale, index.items[name]?.users == 0 {
            index.remove(name)
            drop(name)
        }
        if openDescriptors > settings.idleDescriptors { closeIdleDescriptors() }
    }

    /// Removes an entry's file and descriptor (evicted: nothing uses it).
    private func drop(_ name: String) {
        guard let e = entries.removeValue(forKey: name) else { return }
        if e.fd >= 0 { close(e.fd); openDescriptors -= 1 }
        unlink(e.path)
        counts.evictions += 1
    }

    /// Closes the older half of the idle entries' descriptors; they are opened again by path when read.
    private func closeIdleDescriptors() {
        let idle = entries.values.filter { $0.fd >= 0 && (index.items[$0.name]?.users ?? 0) == 0 }
            .sorted { (index.items[$0.name]?.lastUse ?? 0) < (index.items[$1.name]?.lastUse ?? 0) }
        for e in idle.prefix(max(1, idle.count / 2)) {
            close(e.fd)
            e.fd = -1
            openDescriptors -= 1
        }
    }

    // MARK: Fetching

    /// Starts a GET of chunk `i` into `entry`'s file; the fetch uses the entry until it ends. Called under `lock`.
    private func startFetch(_ entry: Entry, _ i: Int, readAhead: Bool) {
        guard let version = entry.version else { return }
        let attempt = entry.chunks.startFetch(i)
        index.acquire(entry.name)
        if readAhead { readAheadInFlight += 1 }
        counts.getRequests += 1
        let fd = entry.fd
        let range = entry.chunks.range(ofChunk: i)
        let client = files.client, bucket = files.location.bucket
        Task.detached { [self] in
            var filled: Int64 = 0
            var reported: Int64 = 0
            var failure: String?
            var changed = false
            do {
                try await client.get(bucket: bucket, key: version.key, range: range, ifMatch: version.etag) { buffer in
                    try buffer.withUnsafeReadableBytes { (p: UnsafeRawBufferPointer) throws in
                        var off = 0
                        while off < p.count {
                            let n = pwrite(fd, p.baseAddress! + off, p.count - off, off_t(range.lowerBound + filled) + off_t(off))
                            if n < 0 {
                                if errno == EINTR { continue }
                                throw S3Failure.cacheWrite(String(cString: strerror(errno)))
                            }
                            off += n
                        }
                    }
                    filled += Int64(buffer.readableBytes)
                    // Readers of the chunk's first bytes go on before the rest arrives.
                    if filled - reported >= 256 << 10 {
                        reported = filled
                        self.progress(entry, i, attempt, filled)
                    }
                }
                if filled != Int64(range.count) {
                    failure = "GET of bytes \(range.lowerBound)-\(range.upperBound - 1) returned \(filled) bytes"
                }
            } catch S3Error.preconditionFailed {
                changed = true
                failure = S3Failure.changedReason
            } catch {
                failure = S3Failure.describe(error)
            }
            self.finish(entry, i, attempt, filled: filled, failure: failure, changed: changed, readAhead: readAhead, relativeKey: version.key)
        }
    }

    private func progress(_ entry: Entry, _ i: Int, _ attempt: UInt64, _ filled: Int64) {
        lock.lock()
        entry.chunks.progress(i, attempt: attempt, filled: filled)
        lock.broadcast()
        lock.unlock()
    }

    private func finish(_ entry: Entry, _ i: Int, _ attempt: UInt64, filled: Int64, failure: String?, changed: Bool,
                        readAhead: Bool, relativeKey: String) {
        lock.lock()
        counts.bytesFetched += filled
        if readAhead { readAheadInFlight -= 1 }
        var completeNow = false
        if let failure {
            counts.getFailures += 1
            entry.chunks.fail(i, attempt: attempt, reason: failure)
            logger.warning("S3 read failed", metadata: ["key": .string(relativeKey), "chunk": .stringConvertible(i), "error": .string(failure)])
            if changed {
                counts.changedObjects += 1
                entry.stale = true
                // The next read asks the server for the object's version again.
                versions = versions.filter { $0.value.key != relativeKey }
                listedDirectories.removeAll()
            }
        } else {
            entry.chunks.finish(i, attempt: attempt)
            if entry.chunks.isComplete && !entry.complete && !entry.finishing {
                entry.finishing = true
                completeNow = true
            }
        }
        lock.broadcast()
        let fd = entry.fd, from = entry.path, to = objectsDir + "/" + entry.name
        lock.unlock()
        if completeNow {
            // Durable before it is named complete: a power cut never leaves a complete-looking file of zeros.
            let synced = fdatasync(fd) == 0
            let moved = synced && rename(from, to) == 0
            lock.lock()
            entry.finishing = false
            if moved {
                entry.path = to
                entry.complete = true
            }
            lock.unlock()
        }
        release(entry.name)
    }
}

/// The object source of a mount whose store's files are in S3 (see `S3ObjectCache`): reads go through a cache in
/// `cacheDirectory` of at most `limit` bytes.
public func makeObjectSource(files: S3StoreFiles, cacheDirectory: URL, limit: Int64,
                             settings: S3ObjectCache.Settings = S3ObjectCache.Settings()) throws -> S3ObjectCache {
    do {
        return try S3ObjectCache(files: files, directory: cacheDirectory, limit: limit, settings: settings)
    } catch {
        throw S3MountError.cacheDirectory(cacheDirectory.path, "\(error)")
    }
}

/// Why a mount on S3 could not start.
public enum S3MountError: Error, CustomStringConvertible {
    case cacheDirectory(String, String)

    public var description: String {
        switch self {
        case let .cacheDirectory(path, why): return "cannot use \(path) as the S3 read cache: \(why)"
        }
    }
}
