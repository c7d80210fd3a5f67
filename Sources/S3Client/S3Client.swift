import AsyncHTTPClient
import Crypto
import Foundation
import Logging
import NIOCore
import NIOHTTP1

/// Where an S3-compatible server is and how to address it.
public struct S3Endpoint: Sendable, CustomStringConvertible {
    /// Scheme, host and port (`http://127.0.0.1:7480`, `https://s3.eu-west-1.amazonaws.com`); a path is ignored.
    public var url: URL
    public var region: String
    /// `http://host/bucket/key` instead of `http://bucket.host/key`. S3-compatible servers mostly need it.
    public var pathStyle: Bool

    public init(url: URL, region: String = "us-east-1", pathStyle: Bool = true) {
        self.url = url
        self.region = region
        self.pathStyle = pathStyle
    }

    public var description: String { url.absoluteString }
}

/// One object of a listing, or what HEAD said.
public struct S3Object: Sendable, Equatable {
    public var key: String
    public var size: Int64
    /// As the server gave it, quotes removed.
    public var etag: String
    public var lastModified: Date?

    public init(key: String, size: Int64, etag: String, lastModified: Date? = nil) {
        self.key = key
        self.size = size
        self.etag = etag
        self.lastModified = lastModified
    }
}

/// One page of ListObjectsV2, or all pages joined.
public struct S3Listing: Sendable {
    public var objects: [S3Object] = []
    /// With a delimiter: the "directories" one level down, each ending in the delimiter.
    public var commonPrefixes: [String] = []
    /// Present when the server has more; pass it back to get the next page.
    public var nextContinuationToken: String?
    /// Requests this listing took (one per page).
    public var requests = 0
    /// Bytes of the listing's answers (the XML bodies), summed over its pages.
    public var bytes: Int64 = 0
}

/// What a DeleteObjects batch did, key by key. A key that was not there counts as deleted (S3 semantics).
public struct S3DeleteResult: Sendable {
    public struct Failure: Sendable, Equatable {
        public var key: String
        public var code: String
        public var message: String
    }
    public var deleted: [String] = []
    public var failed: [Failure] = []
}

/// Retries for answers that say "try again": 500, 502, 503 (SlowDown), 504 and broken connections.
public struct S3RetryPolicy: Sendable {
    public var maxAttempts: Int
    public var baseDelay: Duration
    public var maxDelay: Duration

    public init(maxAttempts: Int = 5, baseDelay: Duration = .milliseconds(100), maxDelay: Duration = .seconds(5)) {
        self.maxAttempts = max(1, maxAttempts)
        self.baseDelay = baseDelay
        self.maxDelay = maxDelay
    }

    /// Exponential with full jitter: a random wait up to base·2^(attempt-1), capped.
    func delay(afterAttempt attempt: Int) -> Duration {
        let cap = min(maxDelay, baseDelay * (1 << min(attempt - 1, 20)))
        let nanos = cap.components.seconds * 1_000_000_000 + cap.components.attoseconds / 1_000_000_000
        return .nanoseconds(Int64.random(in: nanos / 2...max(nanos / 2, nanos)))
    }
}

/// A small S3 client: the operations SnapFS needs, signed with SigV4, over async-http-client (HTTP and HTTPS).
///
/// Every request carries `x-amz-content-sha256` with the payload's hash (plain SigV4; see `SigV4Signer`).
/// Requests that are safe to repeat are retried on 5xx and broken connections with backoff; a 403 stops at once.
/// Call `shutdown()` when done: the HTTP client holds connections and threads.
public final class S3Client: Sendable {
    public let endpoint: S3Endpoint
    private let signer: SigV4Signer
    private let http: HTTPClient
    private let retry: S3RetryPolicy
    private let requestTimeout: TimeAmount
    private let logger: Logger

    public init(endpoint: S3Endpoint, credentials: S3Credentials, retry: S3RetryPolicy = S3RetryPolicy(),
                connectTimeout: TimeAmount = .seconds(3), readTimeout: TimeAmount = .seconds(60),
                requestTimeout: TimeAmount = .minutes(10), logger: Logger = Logger(label: "snapfs.s3")) {
        self.endpoint = endpoint
        self.signer = SigV4Signer(accessKeyId: credentials.accessKeyId, secretAccessKey: credentials.secretAccessKey,
                                  sessionToken: credentials.sessionToken, region: endpoint.region, service: "s3")
        var config = HTTPClient.Configuration()
        config.timeout = .init(connect: connectTimeout, read: readTimeout)
        config.redirectConfiguration = .disallow
        config.decompression = .disabled
        self.http = HTTPClient(eventLoopGroupProvider: .singleton, configuration: config)
        self.retry = retry
        self.requestTimeout = requestTimeout
        self.logger = logger
    }

    public func shutdown() async throws {
        try await http.shutdown()
    }

    // MARK: - Operations

    public func createBucket(_ bucket: String) async throws {
        let body = endpoint.region == "us-east-1" ? Data() : Data("<CreateBucketConfiguration><LocationConstraint>\(xmlEscape(endpoint.region))</LocationConstraint></CreateBucketConfiguration>".utf8)
        _ = try await send(operation: "CreateBucket", method: .PUT, bucket: bucket, key: nil, body: body)
    }

    /// One page of ListObjectsV2.
    public func listPage(bucket: String, prefix: String = "", delimiter: String? = nil, startAfter: String? = nil,
                         continuationToken: String? = nil, maxKeys: Int? = nil) async throws -> S3Listing {
        var query: [(String, String)] = [("list-type", "2")]
        if !prefix.isEmpty { query.append(("prefix", prefix)) }
        if let delimiter { query.append(("delimiter", delimiter)) }
        if let startAfter, !startAfter.isEmpty { query.append(("start-after", startAfter)) }
        if let continuationToken { query.append(("continuation-token", continuationToken)) }
        if let maxKeys { query.append(("max-keys", String(maxKeys))) }
        let response = try await send(operation: "ListObjectsV2", method: .GET, bucket: bucket, key: nil, query: query)
        guard let root = S3XMLNode.parse(response.body), root.name == "ListBucketResult" else {
            throw S3Error.invalidResponse(operation: "ListObjectsV2", detail: "no ListBucketResult in \(response.body.count) bytes")
        }
        var page = S3Listing(requests: 1)
        page.bytes = Int64(response.body.count)
        for item in root.all("Contents") {
            guard let key = item.value("Key") else { continue }
            page.objects.append(S3Object(key: key, size: Int64(item.value("Size") ?? "") ?? 0,
                                         etag: Self.unquote(item.value("ETag") ?? ""),
                                         lastModified: item.value("LastModified").flatMap(Self.parseISODate)))
        }
        page.commonPrefixes = root.all("CommonPrefixes").compactMap { $0.value("Prefix") }
        if root.value("IsTruncated") == "true" {
            guard let token = root.value("NextContinuationToken"), !token.isEmpty else {
                throw S3Error.invalidResponse(operation: "ListObjectsV2", detail: "truncated listing without NextContinuationToken")
            }
            page.nextContinuationToken = token
        }
        return page
    }

    /// Every page of ListObjectsV2, joined, in key order.
    public func list(bucket: String, prefix: String = "", delimiter: String? = nil, startAfter: String? = nil,
                     pageSize: Int? = nil) async throws -> S3Listing {
        var all = S3Listing()
        var token: String?
        repeat {
            let page = try await listPage(bucket: bucket, prefix: prefix, delimiter: delimiter, startAfter: startAfter,
                                          continuationToken: token, maxKeys: pageSize)
            all.objects += page.objects
            all.commonPrefixes += page.commonPrefixes
            all.requests += 1
            all.bytes += page.bytes
            token = page.nextContinuationToken
        } while token != nil
        return all
    }

    /// HEAD: the object's size and ETag, or nil when there is no such key.
    public func head(bucket: String, key: String) async throws -> S3Object? {
        do {
            let response = try await send(operation: "HeadObject", method: .HEAD, bucket: bucket, key: key)
            let size = response.headers.first(name: "content-length").flatMap { Int64($0) } ?? 0
            let date = response.headers.first(name: "last-modified").flatMap(Self.parseHTTPDate)
            return S3Object(key: key, size: size, etag: Self.unquote(response.headers.first(name: "etag") ?? ""), lastModified: date)
        } catch S3Error.notFound {
            return nil
        }
    }

    /// GET, whole or `range` (byte offsets, upper bound exclusive). A range past the end is cut by the server.
    public func get(bucket: String, key: String, range: Range<Int64>? = nil) async throws -> Data {
        var data = Data()
        try await get(bucket: bucket, key: key, range: range) { chunk in data.append(contentsOf: chunk.readableBytesView) }
        return data
    }

    /// GET, streaming the body to `consume` chunk by chunk. A connection that breaks mid-body is an error (not
    /// retried: `consume` has seen part of it), never a short answer taken for the whole. With `ifMatch`, only that
    /// version of the object: another one is `preconditionFailed`, whether the server refuses it (412) or ignores
    /// `If-Match` and answers with a different ETag.
    public func get(bucket: String, key: String, range: Range<Int64>? = nil, ifMatch: String? = nil,
                    consume: (ByteBuffer) async throws -> Void) async throws {
        if let range, range.isEmpty { return }
        var headers: [(String, String)] = []
        if let range { headers.append(("range", "bytes=\(range.lowerBound)-\(range.upperBound - 1)")) }
        if let ifMatch { headers.append(("if-match", "\"\(ifMatch)\"")) }
        let resource = "\(bucket)/\(key)"
        let response = try await start(operation: "GetObject", method: .GET, bucket: bucket, key: key, headers: headers)
        if let ifMatch, let etag = response.headers.first(name: "etag").map(Self.unquote), etag != ifMatch {
            throw S3Error.preconditionFailed(operation: "GetObject", resource: resource)
        }
        let expected = response.headers.first(name: "content-length").flatMap { Int64($0) }
        var received: Int64 = 0
        do {
            for try await chunk in response.body {
                received += Int64(chunk.readableBytes)
                try await consume(chunk)
            }
        } catch let error as S3Error {
            throw error
        } catch {
            throw S3Error.transport(operation: "GetObject", resource: resource, underlying: "\(error)")
        }
        if let expected, expected != received {
            throw S3Error.transport(operation: "GetObject", resource: resource,
                                    underlying: "body ended after \(received) of \(expected) bytes")
        }
    }

    /// PUT; with `ifNoneMatch` only if the key does not exist yet (412 → `preconditionFailed`). Returns the ETag.
    /// A conditional PUT retried after a 5xx or a broken connection may meet its own first attempt's write and get
    /// 412: a caller taking a lock this way reads the object back to tell its own from another's.
    @discardableResult
    public func put(bucket: String, key: String, data: Data, ifNoneMatch: Bool = false,
                    contentType: String = "application/octet-stream") async throws -> String {
        var headers = [("content-type", contentType)]
        if ifNoneMatch { headers.append(("if-none-match", "*")) }
        let response = try await send(operation: "PutObject", method: .PUT, bucket: bucket, key: key, headers: headers, body: data)
        return Self.unquote(response.headers.first(name: "etag") ?? "")
    }

    /// Server-side copy within the server; returns the new object's ETag.
    @discardableResult
    public func copy(bucket: String, from sourceKey: String, to key: String, sourceBucket: String? = nil) async throws -> String {
        let source = "/\(sourceBucket ?? bucket)/\(sourceKey)".split(separator: "/", omittingEmptySubsequences: false)
            .map { SigV4Signer.uriEncode(String($0)) }.joined(separator: "/")
        let response = try await send(operation: "CopyObject", method: .PUT, bucket: bucket, key: key,
                                      headers: [("x-amz-copy-source", source)])
        // A copy can fail after the 200 has been sent: the body then holds an Error, not a CopyObjectResult.
        guard let root = S3XMLNode.parse(response.body) else {
            throw S3Error.invalidResponse(operation: "CopyObject", detail: "unparsable body")
        }
        if root.name == "Error" {
            throw S3Error.http(operation: "CopyObject", resource: "\(bucket)/\(key)", status: 200,
                               code: root.value("Code") ?? "", message: root.value("Message") ?? "")
        }
        return Self.unquote(root.value("ETag") ?? "")
    }

    /// DeleteObjects in batches of at most 1,000 keys; each key's outcome as the server reported it.
    public func delete(bucket: String, keys: [String]) async throws -> S3DeleteResult {
        var result = S3DeleteResult()
        var start = 0
        while start < keys.count {
            let batch = Array(keys[start..<min(start + 1000, keys.count)])
            start += batch.count
            var xml = "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Delete><Quiet>false</Quiet>"
            for key in batch { xml += "<Object><Key>\(xmlEscape(key))</Key></Object>" }
            xml += "</Delete>"
            let body = Data(xml.utf8)
            let md5 = Data(Insecure.MD5.hash(data: body)).base64EncodedString()
            let response = try await send(operation: "DeleteObjects", method: .POST, bucket: bucket, key: nil,
                                          query: [("delete", "")], headers: [("content-md5", md5), ("content-type", "application/xml")],
                                          body: body)
            guard let root = S3XMLNode.parse(response.body), root.name == "DeleteResult" else {
                throw S3Error.invalidResponse(operation: "DeleteObjects", detail: "no DeleteResult")
            }
            result.deleted += root.all("Deleted").compactMap { $0.value("Key") }
            result.failed += root.all("Error").map {
                S3DeleteResult.Failure(key: $0.value("Key") ?? "", code: $0.value("Code") ?? "", message: $0.value("Message") ?? "")
            }
        }
        return result
    }

    // MARK: - Requests

    struct Response {
        var status: Int
        var headers: HTTPHeaders
        var body: Data
    }

    /// Sends a request and reads the whole answer, retrying what can be retried.
    private func send(operation: String, method: HTTPMethod, bucket: String, key: String?, query: [(String, String)] = [],
                      headers: [(String, String)] = [], body: Data = Data()) async throws -> Response {
        let resource = key.map { "\(bucket)/\($0)" } ?? bucket
        var attempt = 0
        while true {
            attempt += 1
            do {
                let response = try await execute(method: method, bucket: bucket, key: key, query: query, headers: headers, body: body)
                var collected = Data()
                for try await chunk in response.body { collected.append(contentsOf: chunk.readableBytesView) }
                let status = Int(response.status.code)
                if (200..<300).contains(status) {
                    return Response(status: status, headers: response.headers, body: collected)
                }
                let error = Self.error(operation: operation, resource: resource, status: status, body: collected)
                guard Self.retryable(status: status), attempt < retry.maxAttempts else { throw error }
                logger.debug("S3 \(operation) \(resource): HTTP \(status), attempt \(attempt) of \(retry.maxAttempts), retrying")
            } catch let error as S3Error {
                throw error
            } catch {
                guard attempt < retry.maxAttempts else {
                    throw S3Error.transport(operation: operation, resource: resource, underlying: "\(error)")
                }
                logger.debug("S3 \(operation) \(resource): \(error), attempt \(attempt) of \(retry.maxAttempts), retrying")
            }
            try await Task.sleep(for: retry.delay(afterAttempt: attempt))
        }
    }

    /// Sends a request and returns once its status is a success, leaving the body to stream.
    private func start(operation: String, method: HTTPMethod, bucket: String, key: String,
                       headers: [(String, String)]) async throws -> HTTPClientResponse {
        let resource = "\(bucket)/\(key)"
        var attempt = 0
        while true {
            attempt += 1
            do {
                let response = try await execute(method: method, bucket: bucket, key: key, query: [], headers: headers, body: Data())
                let status = Int(response.status.code)
                if (200..<300).contains(status) { return response }
                var collected = Data()
                for try await chunk in response.body { collected.append(contentsOf: chunk.readableBytesView) }
                let error = Self.error(operation: operation, resource: resource, status: status, body: collected)
                guard Self.retryable(status: status), attempt < retry.maxAttempts else { throw error }
            } catch let error as S3Error {
                throw error
            } catch {
                guard attempt < retry.maxAttempts else {
                    throw S3Error.transport(operation: operation, resource: resource, underlying: "\(error)")
                }
            }
            try await Task.sleep(for: retry.delay(afterAttempt: attempt))
        }
    }

    private func execute(method: HTTPMethod, bucket: String, key: String?, query: [(String, String)],
                         headers extra: [(String, String)], body: Data) async throws -> HTTPClientResponse {
        let (host, path) = address(bucket: bucket, key: key)
        let queryString = query.map { "\(SigV4Signer.uriEncode($0.0))=\(SigV4Signer.uriEncode($0.1))" }.joined(separator: "&")
        let payloadHash = SigV4Signer.hexSHA256(body)
        var signed: [(name: String, value: String)] = [(name: "host", value: host), (name: "x-amz-content-sha256", value: payloadHash)]
        signed += extra.map { (name: $0.0, value: $0.1) }
        let signature = signer.sign(SigV4Signer.Request(method: method.rawValue, path: path, query: queryString,
                                                        headers: signed, payloadHash: payloadHash), date: Date())
        let scheme = endpoint.url.scheme ?? "http"
        let encodedPath = path.split(separator: "/", omittingEmptySubsequences: false)
            .map { SigV4Signer.uriEncode(String($0)) }.joined(separator: "/")
        var request = HTTPClientRequest(url: "\(scheme)://\(host)\(encodedPath)\(queryString.isEmpty ? "" : "?\(queryString)")")
        request.method = method
        for (name, value) in signed { request.headers.add(name: name, value: value) }
        for (name, value) in signature.headersToAdd { request.headers.add(name: name, value: value) }
        if method == .PUT || method == .POST {
            request.body = .bytes(ByteBuffer(bytes: body))
        }
        return try await http.execute(request, timeout: requestTimeout)
    }

    /// Host (with a port that is not the scheme's default) and decoded path, path-style or virtual-hosted.
    private func address(bucket: String, key: String?) -> (host: String, path: String) {
        let baseHost = endpoint.url.host ?? "localhost"
        let port = endpoint.url.port.map { ":\($0)" } ?? ""
        if endpoint.pathStyle {
            return ("\(baseHost)\(port)", "/\(bucket)" + (key.map { "/\($0)" } ?? ""))
        }
        return ("\(bucket).\(baseHost)\(port)", "/" + (key ?? ""))
    }

    private static func retryable(status: Int) -> Bool {
        status == 500 || status == 502 || status == 503 || status == 504
    }

    private static func error(operation: String, resource: String, status: Int, body: Data) -> S3Error {
        let root = S3XMLNode.parse(body)
        let code = root?.value("Code") ?? ""
        let message = root?.value("Message") ?? ""
        switch status {
        case 403: return .accessDenied(operation: operation, resource: resource, code: code.isEmpty ? "AccessDenied" : code, message: message)
        case 404: return .notFound(operation: operation, resource: resource, code: code.isEmpty ? "NoSuchKey" : code)
        case 412: return .preconditionFailed(operation: operation, resource: resource)
        default: return .http(operation: operation, resource: resource, status: status, code: code, message: message)
        }
    }

    static func unquote(_ s: String) -> String {
        s.hasPrefix("\"") && s.hasSuffix("\"") && s.count >= 2 ? String(s.dropFirst().dropLast()) : s
    }

    static func parseISODate(_ s: String) -> Date? {
        let f = ISO8601DateFormatter()
        f.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        if let d = f.date(from: s) { return d }
        f.formatOptions = [.withInternetDateTime]
        return f.date(from: s)
    }

    static func parseHTTPDate(_ s: String) -> Date? {
        let f = DateFormatter()
        f.locale = Locale(identifier: "en_US_POSIX")
        f.timeZone = TimeZone(identifier: "GMT")
        f.dateFormat = "EEE, dd MMM yyyy HH:mm:ss zzz"
        return f.date(from: s)
    }
}
