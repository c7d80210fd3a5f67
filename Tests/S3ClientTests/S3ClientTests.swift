import Foundation
import NIOCore
import S3Client
import S3TestSupport
import XCTest

/// The S3 client against both real servers (Ceph RGW and SeaweedFS), started once for the class. Each test runs
/// one body per server, in a bucket of its own, and a failure names the server.
final class S3ClientTests: XCTestCase {
    static let servers = S3TestServers()

    override class func setUp() {
        super.setUp()
        servers.startAll()
    }

    override class func tearDown() {
        servers.stopAll()
        super.tearDown()
    }

    /// Runs `body` once per server with a fresh client and a fresh bucket.
    func onEachServer(_ test: String = #function,
                              _ body: (S3TestServer, S3Client, String) async throws -> Void) async throws {
        if S3TestServers.skipRequested { throw XCTSkip("SNAPFS_SKIP_S3_TESTS=1") }
        let running: [S3TestServer]
        do { running = try Self.servers.servers() } catch { XCTFail("\(error)"); return }
        for server in running {
            let client = S3Client(endpoint: server.endpoint, credentials: server.credentials,
                                  retry: S3RetryPolicy(maxAttempts: 3, baseDelay: .milliseconds(50)))
            let bucket = test.lowercased().filter { $0.isLetter || $0.isNumber }.prefix(40) + "-\(server.kind.rawValue)"
            do {
                try await client.createBucket(String(bucket))
                try await body(server, client, String(bucket))
            } catch {
                XCTFail("\(server.kind): \(error)")
            }
            try await client.shutdown()
        }
    }

    func testPutGetHeadAndRanges() async throws {
        try await onEachServer { server, s3, bucket in
            let data = Data((0..<10_000).map { UInt8(truncatingIfNeeded: $0 &* 7) })
            let etag = try await s3.put(bucket: bucket, key: "dir/a file+ü.bin", data: data)
            XCTAssertFalse(etag.isEmpty, "\(server.kind)")
            let whole = try await s3.get(bucket: bucket, key: "dir/a file+ü.bin")
            XCTAssertEqual(whole, data, "\(server.kind)")
            let part = try await s3.get(bucket: bucket, key: "dir/a file+ü.bin", range: 100..<250)
            XCTAssertEqual(part, data[100..<250], "\(server.kind)")
            let tail = try await s3.get(bucket: bucket, key: "dir/a file+ü.bin", range: 9_990..<20_000)
            XCTAssertEqual(tail, data[9_990...], "\(server.kind): a range past the end is cut")
            let head = try await s3.head(bucket: bucket, key: "dir/a file+ü.bin")
            XCTAssertEqual(head?.size, 10_000, "\(server.kind)")
            XCTAssertEqual(head?.etag, etag, "\(server.kind)")
            let missing = try await s3.head(bucket: bucket, key: "dir/nope")
            XCTAssertNil(missing, "\(server.kind)")
            do {
                _ = try await s3.get(bucket: bucket, key: "dir/nope")
                XCTFail("\(server.kind): GET of a missing key succeeded")
            } catch S3Error.notFound {}
        }
    }

    func testListingPagesPrefixesDelimiterAndStartAfter() async throws {
        try await onEachServer { server, s3, bucket in
            var keys: [String] = []
            for job in ["job-a", "job-b"] {
                for n in 1...7 { keys.append("store/\(job)/chk-\(n)/_metadata") }
                keys.append("store/\(job)/shared/sst-1")
            }
            keys.append("store/top.txt")
            for key in keys { try await s3.put(bucket: bucket, key: key, data: Data(key.utf8)) }
            // 0-byte "directory" markers, as Flink's S3A writes them.
            for marker in ["store/job-a/shared/", "store/job-a/taskowned/"] { try await s3.put(bucket: bucket, key: marker, data: Data()) }

            let all = try await s3.list(bucket: bucket, prefix: "store/", pageSize: 4)
            XCTAssertEqual(Set(all.objects.map(\.key)), Set(keys + ["store/job-a/shared/", "store/job-a/taskowned/"]), "\(server.kind)")
            XCTAssertEqual(all.objects.map(\.key), all.objects.map(\.key).sorted(), "\(server.kind): key order")
            XCTAssertEqual(all.requests, (keys.count + 2 + 3) / 4, "\(server.kind): one request per page of 4")
            for marker in all.objects where marker.key.hasSuffix("/") {
                XCTAssertEqual(marker.size, 0, "\(server.kind): \(marker.key)")
            }
            let markerHead = try await s3.head(bucket: bucket, key: "store/job-a/taskowned/")
            XCTAssertEqual(markerHead?.size, 0, "\(server.kind)")

            let top = try await s3.list(bucket: bucket, prefix: "store/", delimiter: "/")
            XCTAssertEqual(top.commonPrefixes, ["store/job-a/", "store/job-b/"], "\(server.kind)")
            XCTAssertEqual(top.objects.map(\.key), ["store/top.txt"], "\(server.kind)")

            let jobA = try await s3.list(bucket: bucket, prefix: "store/job-a/", delimiter: "/", pageSize: 3)
            XCTAssertEqual(Set(jobA.commonPrefixes), Set((1...7).map { "store/job-a/chk-\($0)/" } + ["store/job-a/shared/", "store/job-a/taskowned/"]),
                           "\(server.kind)")

            let after = try await s3.list(bucket: bucket, prefix: "store/job-b/", startAfter: "store/job-b/chk-5/_metadata")
            XCTAssertEqual(after.objects.map(\.key), ["store/job-b/chk-6/_metadata", "store/job-b/chk-7/_metadata", "store/job-b/shared/sst-1"],
                           "\(server.kind)")
        }
    }

    func testConditionalPutCopyAndDeleteBatches() async throws {
        try await onEachServer { server, s3, bucket in
            try await s3.put(bucket: bucket, key: "lock", data: Data("owner-1".utf8), ifNoneMatch: true)
            do {
                try await s3.put(bucket: bucket, key: "lock", data: Data("owner-2".utf8), ifNoneMatch: true)
                XCTFail("\(server.kind): a second conditional PUT of the same key succeeded")
            } catch S3Error.preconditionFailed {}
            let lock = try await s3.get(bucket: bucket, key: "lock")
            XCTAssertEqual(String(decoding: lock, as: UTF8.self), "owner-1", "\(server.kind)")

            let payload = Data(repeating: 0x5a, count: 3000)
            try await s3.put(bucket: bucket, key: "sp/from/file", data: payload)
            try await s3.copy(bucket: bucket, from: "sp/from/file", to: "sp/to/file")
            let copied = try await s3.get(bucket: bucket, key: "sp/to/file")
            XCTAssertEqual(copied, payload, "\(server.kind)")

            // 1,203 keys: two batches; one key that never existed.
            var keys = (0..<1202).map { String(format: "many/k%05d", $0) }
            for key in keys.prefix(20) { try await s3.put(bucket: bucket, key: key, data: Data([1])) }
            keys.append("many/never-existed")
            let result = try await s3.delete(bucket: bucket, keys: keys)
            XCTAssertEqual(result.failed, [], "\(server.kind)")
            XCTAssertEqual(Set(result.deleted), Set(keys), "\(server.kind): every key, the missing one too, reported deleted")
            for key in keys.prefix(20) {
                let gone = try await s3.head(bucket: bucket, key: key)
                XCTAssertNil(gone, "\(server.kind): \(key) still there")
            }
        }
    }

    func testWrongSecretStopsAtOnceWithAClearMessage() async throws {
        try await onEachServer { server, _, bucket in
            let bad = S3Client(endpoint: server.endpoint,
                               credentials: S3Credentials(accessKeyId: S3TestServer.accessKey, secretAccessKey: "not-the-secret"))
            do {
                _ = try await bad.list(bucket: bucket)
                XCTFail("\(server.kind): a wrong secret listed the bucket")
            } catch let error as S3Error {
                guard case .accessDenied = error else { XCTFail("\(server.kind): \(error)"); return }
                let text = "\(error)"
                XCTAssertTrue(text.contains("403") && text.contains("AWS_SECRET_ACCESS_KEY"), text)
                XCTAssertFalse(text.contains("not-the-secret"), "the message shows the secret: \(text)")
            }
            try await bad.shutdown()
        }
    }

    func testServerKilledMidReadFailsWithoutHangingAndReadsWorkAfterRestart() async throws {
        try await onEachServer { server, s3, bucket in
            let size = 48 << 20
            var bytes = [UInt8](repeating: 0, count: size)
            for i in stride(from: 0, to: size, by: 4096) { bytes[i] = UInt8(truncatingIfNeeded: i >> 12) }
            let big = Data(bytes)
            try await s3.put(bucket: bucket, key: "big", data: big)
            var received = 0
            var killed = false
            do {
                try await s3.get(bucket: bucket, key: "big") { chunk in
                    received += chunk.readableBytes
                    if !killed {
                        killed = true
                        server.killGateway()
                    }
                }
                XCTFail("\(server.kind): the read of \(size) bytes finished although the gateway was killed after \(received)")
            } catch let error as S3Error {
                guard case .transport = error else { XCTFail("\(server.kind): \(error)"); return }
            }
            XCTAssertLessThan(received, size, "\(server.kind)")
            try server.restartGateway()
            let again = try await s3.get(bucket: bucket, key: "big", range: 1_000_000..<1_000_100)
            XCTAssertEqual(again, big[1_000_000..<1_000_100], "\(server.kind)")
        }
    }
}
