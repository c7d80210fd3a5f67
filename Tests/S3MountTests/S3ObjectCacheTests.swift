import Foundation
import S3Client
import S3Mount
import S3TestSupport
import SnapFileOps
import Synchronization
import XCTest
#if canImport(Glibc)
import Glibc
#endif

/// The S3 read cache against both real servers (Ceph RGW and SeaweedFS), with no kernel: reads through
/// `withDescriptor` exactly as the mount's read path does them, then `pread` of the descriptor it hands out.
final class S3ObjectCacheTests: XCTestCase {
    static let servers = S3TestServers()

    override class func setUp() {
        super.setUp()
        servers.startAll()
    }

    override class func tearDown() {
        servers.stopAll()
        super.tearDown()
    }

    /// A setting small enough that the test objects span several chunks.
    static var smallChunks: S3ObjectCache.Settings {
        var s = S3ObjectCache.Settings()
        s.chunkSize = 256 << 10
        s.readAheadChunks = 2
        return s
    }

    struct Bench {
        let server: S3TestServer
        let client: S3Client
        let bucket: String
        let files: S3StoreFiles
        let cacheDir: URL

        func put(_ relative: String, _ data: Data) throws {
            let key = files.location.key(relative)
            try awaitS3 { try await client.put(bucket: bucket, key: key, data: data) }
        }

        func cache(limit: Int64 = 1 << 30, settings: S3ObjectCache.Settings = S3ObjectCacheTests.smallChunks) throws -> S3ObjectCache {
            try makeObjectSource(files: files, cacheDirectory: cacheDir, limit: limit, settings: settings)
        }
    }

    /// Runs `body` once per server with a fresh bucket, store prefix and cache directory. Synchronous on purpose:
    /// the cache blocks its caller as a kernel worker thread would be blocked, which must not be one of Swift's
    /// concurrency threads.
    func onEachServer(_ test: String = #function, _ body: (Bench) throws -> Void) throws {
        if S3TestServers.skipRequested { throw XCTSkip("SNAPFS_SKIP_S3_TESTS=1") }
        let running: [S3TestServer]
        do { running = try Self.servers.servers() } catch { XCTFail("\(error)"); return }
        for server in running {
            let client = S3Client(endpoint: server.endpoint, credentials: server.credentials,
                                  retry: S3RetryPolicy(maxAttempts: 3, baseDelay: .milliseconds(50), maxDelay: .milliseconds(400)),
                                  connectTimeout: .seconds(2), readTimeout: .seconds(10))
            let bucket = String(test.lowercased().filter { $0.isLetter || $0.isNumber }.prefix(40)) + "-\(server.kind.rawValue)"
            let dir = URL(fileURLWithPath: "/tmp/s3-mount-cache-\(UUID().uuidString.prefix(8))")
            do {
                try awaitS3 { try await client.createBucket(bucket) }
                let files = S3StoreFiles(client: client, location: try S3Location(bucket: bucket, prefix: "stores/one"))
                try body(Bench(server: server, client: client, bucket: bucket, files: files, cacheDir: dir))
            } catch {
                XCTFail("\(server.kind): \(error)")
            }
            try? FileManager.default.removeItem(at: dir)
            try awaitS3 { try await client.shutdown() }
        }
    }

    static func pattern(_ count: Int, seed: UInt8) -> Data {
        Data((0..<count).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ ($0 >> 9)) ^ seed })
    }

    /// Reads `range` of `relative` through the cache as the mount does: a descriptor, then `pread` at the offsets.
    static func read(_ cache: S3ObjectCache, _ relative: String, _ range: Range<Int64>) throws(FSError) -> Data {
        try cache.withDescriptor(relative, covering: range) { fd throws(FSError) -> Data in
            var out = Data(count: range.count)
            let n = out.withUnsafeMutableBytes { pread(fd, $0.baseAddress!, range.count, off_t(range.lowerBound)) }
            guard n >= 0 else { throw .io("pread: \(String(cString: strerror(errno)))") }
            return out.prefix(n)
        }
    }

    func testRangesReadAndSecondReadsServedFromTheCache() throws {
        try onEachServer { b in
            let big = Self.pattern(1_300_000, seed: 1), small = Self.pattern(5000, seed: 2)
            try b.put("chk-1/big", big)
            try b.put("chk-1/small", small)
            try b.put("chk-1/empty", Data())
            try b.put("top", Data("top".utf8))
            let cache = try b.cache()
            XCTAssertEqual(try Self.read(cache, "chk-1/big", 300_000..<300_100), big[300_000..<300_100], "\(b.server.kind)")
            XCTAssertEqual(try Self.read(cache, "chk-1/big", 1_200_000..<1_400_000), big[1_200_000...], "\(b.server.kind): cut at the end")
            XCTAssertEqual(try Self.read(cache, "chk-1/small", 0..<5000), small, "\(b.server.kind)")
            XCTAssertEqual(try Self.read(cache, "chk-1/empty", 0..<4096), Data(), "\(b.server.kind)")
            XCTAssertEqual(try Self.read(cache, "top", 0..<4096), Data("top".utf8), "\(b.server.kind)")
            let first = cache.counters
            XCTAssertEqual(first["listRequests"], 2, "\(b.server.kind): one listing per directory, none per file: \(first)")
            XCTAssertEqual(first["headRequests"], 0, "\(b.server.kind): \(first)")
            XCTAssertGreaterThan(first["getRequests"] ?? 0, 2, "\(b.server.kind)")
            // The whole of every object, twice: the first time fetches what is missing, the second costs no request.
            XCTAssertEqual(try Self.read(cache, "chk-1/big", 0..<1_300_000), big, "\(b.server.kind)")
            let afterWhole = cache.counters
            XCTAssertEqual(afterWhole["bytesFetched"], Int64(big.count + small.count + 3), "\(b.server.kind): each byte fetched once: \(afterWhole)")
            XCTAssertEqual(try Self.read(cache, "chk-1/big", 0..<1_300_000), big, "\(b.server.kind)")
            XCTAssertEqual(try Self.read(cache, "chk-1/small", 100..<200), small[100..<200], "\(b.server.kind)")
            let second = cache.counters
            XCTAssertEqual(second["getRequests"], afterWhole["getRequests"], "\(b.server.kind): second reads from the cache: \(second)")
            XCTAssertEqual(second["readsFromCache"], (afterWhole["readsFromCache"] ?? 0) + 2, "\(b.server.kind)")
            // An object the server does not have is EIO naming it.
            XCTAssertThrowsError(try Self.read(cache, "chk-1/nope", 0..<10)) { e in
                XCTAssertEqual((e as? FSError)?.errno, EIO, "\(b.server.kind)")
                XCTAssertTrue("\(e)".contains("chk-1/nope"), "\(b.server.kind): \(e)")
            }
        }
    }

    func testLimitEvictsLeastRecentlyUsed() throws {
        try onEachServer { b in
            let size = 300_000
            for i in 0..<6 { try b.put("shared/f\(i)", Self.pattern(size, seed: UInt8(i))) }
            let cache = try b.cache(limit: Int64(size) * 3 + 1000)
            for i in 0..<3 { XCTAssertEqual(try Self.read(cache, "shared/f\(i)", 0..<Int64(size)), Self.pattern(size, seed: UInt8(i))) }
            // f0 used again: f1 is now the oldest.
            _ = try Self.read(cache, "shared/f0", 0..<10)
            let before = cache.counters["getRequests"] ?? 0
            XCTAssertEqual(try Self.read(cache, "shared/f3", 0..<Int64(size)), Self.pattern(size, seed: 3), "\(b.server.kind)")
            var c = cache.counters
            XCTAssertEqual(c["evictions"], 1, "\(b.server.kind): \(c)")
            XCTAssertLessThanOrEqual(c["cacheBytes"] ?? .max, Int64(size) * 3 + 1000, "\(b.server.kind)")
            XCTAssertEqual(try Self.read(cache, "shared/f0", 0..<Int64(size)), Self.pattern(size, seed: 0))
            XCTAssertEqual(try Self.read(cache, "shared/f2", 0..<Int64(size)), Self.pattern(size, seed: 2))
            XCTAssertEqual(cache.counters["getRequests"], before + 2, "\(b.server.kind): f3's two chunks; f0 and f2 stayed")
            XCTAssertEqual(try Self.read(cache, "shared/f1", 0..<100), Self.pattern(size, seed: 1).prefix(100), "\(b.server.kind)")
            XCTAssertGreaterThan(cache.counters["getRequests"] ?? 0, before + 2, "\(b.server.kind): f1 was evicted and is fetched again")
            for i in 4..<6 { _ = try Self.read(cache, "shared/f\(i)", 0..<Int64(size)) }
            c = cache.counters
            XCTAssertLessThanOrEqual(c["cacheBytes"] ?? .max, Int64(size) * 3 + 1000, "\(b.server.kind): \(c)")
            let onDisk = try FileManager.default.contentsOfDirectory(atPath: b.cacheDir.appendingPathComponent("objects").path).count
                + (try FileManager.default.contentsOfDirectory(atPath: b.cacheDir.appendingPathComponent("partial").path).count)
            XCTAssertLessThanOrEqual(onDisk, 3, "\(b.server.kind): evicted files are removed")
        }
    }

    func testRestartReusesCompleteEntriesAndNeverServesATornOne() throws {
        try onEachServer { b in
            let a = Self.pattern(600_000, seed: 7), c = Self.pattern(400_000, seed: 8)
            try b.put("a", a)
            try b.put("c", c)
            do {
                let cache = try b.cache()
                XCTAssertEqual(try Self.read(cache, "a", 0..<600_000), a)
                XCTAssertEqual(try Self.read(cache, "c", 0..<400_000), c)
                _ = cache.counters
            }
            let objects = b.cacheDir.appendingPathComponent("objects").path
            // An entry is moved to objects/ after its last chunk, in the background (after fdatasync).
            var names: [String] = []
            for _ in 0..<200 {
                names = try FileManager.default.contentsOfDirectory(atPath: objects).sorted()
                if names.count == 2 { break }
                usleep(50_000)
            }
            XCTAssertEqual(names.count, 2, "\(b.server.kind): both complete: \(names)")
            // A crash's leftovers: a torn file under objects/ (shorter than its name says) and a partial one.
            let torn = try XCTUnwrap(names.first { $0.hasSuffix("-400000") })
            XCTAssertEqual(truncate(objects + "/" + torn, 1000), 0)
            _ = FileManager.default.createFile(atPath: b.cacheDir.appendingPathComponent("partial/leftover-10").path, contents: Data(count: 10))
            let reopened = try b.cache()
            XCTAssertEqual(reopened.counters["cacheEntries"], 1, "\(b.server.kind): the torn entry is dropped")
            XCTAssertEqual(try Self.read(reopened, "a", 0..<600_000), a, "\(b.server.kind)")
            XCTAssertEqual(reopened.counters["getRequests"], 0, "\(b.server.kind): served from the entry the last run left")
            XCTAssertEqual(try Self.read(reopened, "c", 0..<400_000), c, "\(b.server.kind): fetched again, not the torn bytes")
            XCTAssertGreaterThan(reopened.counters["getRequests"] ?? 0, 0)
            XCTAssertFalse(try FileManager.default.contentsOfDirectory(atPath: b.cacheDir.appendingPathComponent("partial").path)
                .contains("leftover-10"), "\(b.server.kind): what a crash left half written is removed at start")
            for _ in 0..<200 {
                names = try FileManager.default.contentsOfDirectory(atPath: objects)
                if names.count == 2 { break }
                usleep(50_000)
            }
            XCTAssertEqual(names.count, 2, "\(b.server.kind): the refetched entry is complete again")
        }
    }

    func testAChangedObjectIsNeverServedFromItsOldEntry() throws {
        try onEachServer { b in
            let old = Self.pattern(1_000_000, seed: 3), new = Self.pattern(1_000_000, seed: 4)
            try b.put("obj", old)
            do {
                let cache = try b.cache()
                XCTAssertEqual(try Self.read(cache, "obj", 0..<1_000_000), old)
            }
            try b.put("obj", new)
            // A new run: the object's new ETag names another entry; the old bytes are not served.
            let cache = try b.cache()
            XCTAssertEqual(try Self.read(cache, "obj", 0..<1_000_000), new, "\(b.server.kind)")
            // Changed while a run has read only part of it: the rest is not the old version's bytes.
            try b.put("obj2", old)
            XCTAssertEqual(try Self.read(cache, "obj2", 0..<1000), old.prefix(1000))
            try b.put("obj2", new)
            do {
                let tail = try Self.read(cache, "obj2", 900_000..<1_000_000)
                XCTAssertEqual(tail, new[900_000...], "\(b.server.kind): if served at all, the new version")
            } catch let e as FSError {
                XCTAssertEqual(e.errno, EIO)
                XCTAssertTrue("\(e)".contains("changed"), "\(b.server.kind): \(e)")
                XCTAssertEqual(cache.counters["changedObjects"], 1, "\(b.server.kind)")
            }
            // The next read asks the server again and gets the new version whole.
            XCTAssertEqual(try Self.read(cache, "obj2", 0..<1_000_000), new, "\(b.server.kind)")
        }
    }

    func testServerKilledMidReadIsEIOAndReadsWorkAfterItsRestart() throws {
        try onEachServer { b in
            let size = 48 << 20
            let data = Self.pattern(size, seed: 9)
            try b.put("big", data)
            var s = S3ObjectCache.Settings()
            s.chunkSize = 4 << 20
            let cache = try b.cache(settings: s)
            _ = try Self.read(cache, "big", 0..<10)
            // A reader of the whole object in the background; the gateway dies once bytes of it have arrived.
            let outcome = Mutex<Result<Data, FSError>?>(nil)
            let done = DispatchSemaphore(value: 0)
            let reader = Thread {
                let r: Result<Data, FSError>
                do throws(FSError) { r = .success(try Self.read(cache, "big", 0..<Int64(size))) } catch { r = .failure(error) }
                outcome.withLock { $0 = r }
                done.signal()
            }
            reader.start()
            let start = cache.counters["bytesFetched"] ?? 0
            while (cache.counters["bytesFetched"] ?? 0) == start && outcome.withLock({ $0 == nil }) { usleep(500) }
            b.server.killGateway()
            XCTAssertEqual(done.wait(timeout: .now() + 120), .success, "\(b.server.kind): the read hangs")
            switch outcome.withLock({ $0 }) {
            case .failure(let e):
                XCTAssertEqual(e.errno, EIO, "\(b.server.kind): \(e)")
                XCTAssertTrue("\(e)".contains("big"), "\(b.server.kind): names the file: \(e)")
            case .success:
                XCTFail("\(b.server.kind): the whole object was read although the gateway was killed (it was fetched too fast to test)")
            case nil:
                XCTFail("no outcome")
            }
            XCTAssertGreaterThan(cache.counters["getFailures"] ?? 0, 0, "\(b.server.kind)")
            try b.server.restartGateway()
            XCTAssertEqual(try Self.read(cache, "big", 0..<Int64(size)), data, "\(b.server.kind): reads work again")
        }
    }
}

/// Runs an async S3 call from a synchronous test and returns its answer.
@discardableResult
func awaitS3<T: Sendable>(_ body: @escaping @Sendable () async throws -> T) throws -> T {
    let done = DispatchSemaphore(value: 0)
    let result = Mutex<Result<T, any Error>?>(nil)
    Task.detached {
        do { let v = try await body(); result.withLock { $0 = .success(v) } } catch { result.withLock { $0 = .failure(error) } }
        done.signal()
    }
    done.wait()
    return try result.withLock { $0 }!.get()
}
