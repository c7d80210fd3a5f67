import FlinkFixtures
import Foundation
import S3Client
import Synchronization
import XCTest

/// Retries and refusals, against a scripted HTTP server on 127.0.0.1 (no real server throttles on demand): 503
/// SlowDown and 500 are retried with backoff until an answer comes, up to the policy's attempts; a 403 is asked once.
final class S3RetryTests: XCTestCase {
    static let listing = """
        <?xml version="1.0" encoding="UTF-8"?>
        <ListBucketResult><Name>b</Name><Prefix></Prefix><KeyCount>1</KeyCount><IsTruncated>false</IsTruncated>\
        <Contents><Key>k&amp;1</Key><Size>3</Size><ETag>&quot;abc&quot;</ETag><LastModified>2026-01-02T03:04:05.000Z</LastModified></Contents>\
        </ListBucketResult>
        """

    /// A server answering with `script`'s statuses in turn (then the last one), an S3 error body for failures.
    private func serve(_ script: [Int]) throws -> (FakeFlink, Counter) {
        let count = Counter()
        let server = try FakeFlink { _, _, _ in
            let n = count.next()
            let status = script[min(n - 1, script.count - 1)]
            switch status {
            case 200: return (200, Self.listing)
            case 503: return (503, "<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>")
            case 403: return (403, "<Error><Code>SignatureDoesNotMatch</Code><Message>nope</Message></Error>")
            default: return (status, "<Error><Code>InternalError</Code><Message>oops</Message></Error>")
            }
        }
        return (server, count)
    }

    final class Counter: Sendable {
        private let value = Mutex(0)
        func next() -> Int { value.withLock { $0 += 1; return $0 } }
        var count: Int { value.withLock { $0 } }
    }

    private func client(_ server: FakeFlink, attempts: Int) -> S3Client {
        S3Client(endpoint: S3Endpoint(url: URL(string: server.url)!), credentials: S3Credentials(accessKeyId: "AK", secretAccessKey: "SK"),
                 retry: S3RetryPolicy(maxAttempts: attempts, baseDelay: .milliseconds(10), maxDelay: .milliseconds(50)))
    }

    func testSlowDownAndInternalErrorsAreRetriedUntilAnAnswer() async throws {
        let (server, count) = try serve([503, 500, 503, 200])
        defer { server.stop() }
        let s3 = client(server, attempts: 5)
        let listing = try await s3.list(bucket: "b")
        try await s3.shutdown()
        XCTAssertEqual(count.count, 4)
        XCTAssertEqual(listing.objects, [S3Object(key: "k&1", size: 3, etag: "abc", lastModified: listing.objects.first?.lastModified)])
        XCTAssertNotNil(listing.objects.first?.lastModified)
    }

    func testRetriesEndWithTheServersLastAnswer() async throws {
        let (server, count) = try serve([503])
        defer { server.stop() }
        let s3 = client(server, attempts: 3)
        do {
            _ = try await s3.list(bucket: "b")
            XCTFail("a listing succeeded against a server that only throttles")
        } catch let error as S3Error {
            guard case .http(_, _, 503, "SlowDown", _) = error else { return XCTFail("\(error)") }
        }
        try await s3.shutdown()
        XCTAssertEqual(count.count, 3)
    }

    func testForbiddenIsAskedOnceAndSaysWhatToCheck() async throws {
        let (server, count) = try serve([403, 200])
        defer { server.stop() }
        let s3 = client(server, attempts: 5)
        do {
            _ = try await s3.head(bucket: "b", key: "k")
            XCTFail("HEAD succeeded on a 403")
        } catch let error as S3Error {
            guard case .accessDenied = error else { return XCTFail("\(error)") }
            XCTAssertTrue("\(error)".contains("HeadObject") && "\(error)".contains("b/k"), "\(error)")
        }
        try await s3.shutdown()
        XCTAssertEqual(count.count, 1)
    }

    func testAServerThatIsNotThereFailsAfterItsAttempts() async throws {
        let (server, _) = try serve([200])
        let url = server.url
        server.stop()
        let s3 = S3Client(endpoint: S3Endpoint(url: URL(string: url)!), credentials: S3Credentials(accessKeyId: "AK", secretAccessKey: "SK"),
                          retry: S3RetryPolicy(maxAttempts: 2, baseDelay: .milliseconds(10)))
        do {
            _ = try await s3.get(bucket: "b", key: "k")
            XCTFail("a GET succeeded with no server")
        } catch let error as S3Error {
            guard case .transport = error else { return XCTFail("\(error)") }
        }
        try await s3.shutdown()
    }
}
