import CoreMetrics
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A minimal blocking HTTP/1.1 client for Flink's REST API.
///
/// Why not URLSession or async-http-client: the engine's calls are few, small, local and blocking by design
/// (`SnapshotEngine.takeSnapshot` is synchronous and runs off any event loop), and they must fail fast with a
/// clear reason when the JobManager is down. FoundationNetworking's URLSession on Linux pulls in libcurl and has
/// had hangs and crashes with synchronous use; async-http-client would add SwiftNIO and minutes of build time
/// for a handful of JSON requests. A socket with explicit timeouts does exactly what is needed: one request per
/// connection (`Connection: close`), `Content-Length` or chunked responses, plain `http://` only (Flink's REST
/// endpoint without TLS, as in a local or sidecar deployment).
struct HTTPClient: Sendable {
    struct Response: Sendable {
        var status: Int
        var body: Data
    }

    struct Failure: Error, CustomStringConvertible, Sendable {
        var description: String
    }

    let host: String
    let port: UInt16
    let basePath: String
    /// Seconds for connecting and for each read or write; a JobManager that stops answering fails the call.
    let timeout: Double
    /// Responses larger than this are refused (Flink's answers are a few kilobytes).
    static let maximumResponse = 64 << 20

    init(baseURL: String, timeout: Double = 10) throws(Failure) {
        guard let url = URL(string: baseURL), url.scheme == "http", let host = url.host, !host.isEmpty else {
            throw Failure(description: "REST address '\(baseURL)' is not http://HOST:PORT (https is not supported)")
        }
        self.host = host
        self.port = UInt16(url.port ?? 80)
        var path = url.path
        while path.hasSuffix("/") { path.removeLast() }
        self.basePath = path
        self.timeout = timeout
    }

    /// `snapfs_flink_rest_seconds{method,outcome}`: how long each call to the JobManager took (outcome: `ok` for any
    /// HTTP answer, `error` when none came). Recorded only where a metrics backend is bootstrapped.
    static let latencyMetric = "snapfs_flink_rest_seconds"

    func request(_ method: String, _ path: String, json: Data? = nil, contentType: String = "application/json") throws(Failure) -> Response {
        let start = DispatchTime.now().uptimeNanoseconds
        var outcome = "error"
        defer {
            Timer(label: Self.latencyMetric, dimensions: [("method", method), ("outcome", outcome)])
                .recordNanoseconds(Int64(DispatchTime.now().uptimeNanoseconds - start))
        }
        let response = try exchange(method, path, json: json, contentType: contentType)
        outcome = "ok"
        return response
    }

    private func exchange(_ method: String, _ path: String, json: Data?, contentType: String) throws(Failure) -> Response {
        let fd = try connect()
        defer { close(fd) }
        var head = "\(method) \(basePath)\(path) HTTP/1.1\r\nHost: \(host):\(port)\r\nConnection: close\r\nAccept: application/json\r\n"
        if let json {
            head += "Content-Type: \(contentType)\r\nContent-Length: \(json.count)\r\n"
        } else if method != "GET" {
            head += "Content-Length: 0\r\n"
        }
        head += "\r\n"
        var out = Data(head.utf8)
        if let json { out.append(json) }
        try send(fd, out)
        let raw = try receiveAll(fd)
        return try Self.parse(raw)
    }

    private func connect() throws(Failure) -> Int32 {
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var list: UnsafeMutablePointer<addrinfo>?
        let rc = getaddrinfo(host, String(port), &hints, &list)
        guard rc == 0, let first = list else {
            throw Failure(description: "cannot resolve \(host): \(String(cString: gai_strerror(rc)))")
        }
        defer { freeaddrinfo(list) }
        var lastError = ECONNREFUSED
        var cursor: UnsafeMutablePointer<addrinfo>? = first
        while let ai = cursor {
            cursor = ai.pointee.ai_next
            let fd = socket(ai.pointee.ai_family, ai.pointee.ai_socktype, ai.pointee.ai_protocol)
            guard fd >= 0 else { lastError = errno; continue }
            var tv = timeval(tv_sec: Int(timeout), tv_usec: Int((timeout - Double(Int(timeout))) * 1_000_000))
            setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
            setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
            // A blocking connect honours SO_SNDTIMEO on Linux, so a host that drops packets fails within `timeout`.
            if Glibc.connect(fd, ai.pointee.ai_addr, ai.pointee.ai_addrlen) == 0 { return fd }
            lastError = errno
            close(fd)
        }
        throw Failure(description: "cannot connect to \(host):\(port): \(String(cString: strerror(lastError)))")
    }

    private func send(_ fd: Int32, _ data: Data) throws(Failure) {
        var sent = 0
        let result: Failure? = data.withUnsafeBytes { buffer -> Failure? in
            guard let base = buffer.baseAddress else { return nil }
            while sent < buffer.count {
                let n = Glibc.send(fd, base + sent, buffer.count - sent, Int32(MSG_NOSIGNAL))
                if n < 0 {
                    if errno == EINTR { continue }
                    return Failure(description: "cannot send to \(host):\(port): \(String(cString: strerror(errno)))")
                }
                sent += n
            }
            return nil
        }
        if let result { throw result }
    }

    private func receiveAll(_ fd: Int32) throws(Failure) -> Data {
        var data = Data()
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n == 0 { return data }
            if n < 0 {
                if errno == EINTR { continue }
                let why = errno == EAGAIN || errno == EWOULDBLOCK ? "no answer within \(timeout) s" : String(cString: strerror(errno))
                throw Failure(description: "cannot read from \(host):\(port): \(why)")
            }
            data.append(contentsOf: buffer[0..<n])
            if data.count > Self.maximumResponse { throw Failure(description: "answer from \(host):\(port) is larger than \(Self.maximumResponse) bytes") }
        }
    }

    /// Status line, headers, then a body framed by Content-Length, chunked encoding, or the connection's end.
    static func parse(_ raw: Data) throws(Failure) -> Response {
        let bytes = [UInt8](raw)
        guard let headerEnd = find([13, 10, 13, 10], in: bytes, from: 0) else {
            throw Failure(description: "incomplete HTTP answer (\(bytes.count) bytes, no end of headers)")
        }
        let head = String(decoding: bytes[0..<headerEnd], as: UTF8.self)
        let lines = head.components(separatedBy: "\r\n")
        let statusParts = lines.first?.split(separator: " ") ?? []
        guard statusParts.count >= 2, statusParts[0].hasPrefix("HTTP/1."), let status = Int(statusParts[1]) else {
            throw Failure(description: "not an HTTP/1.x answer: '\(lines.first ?? "")'")
        }
        var headers: [String: String] = [:]
        for line in lines.dropFirst() {
            guard let colon = line.firstIndex(of: ":") else { continue }
            headers[line[..<colon].lowercased()] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
        }
        let body = Array(bytes[(headerEnd + 4)...])
        if headers["transfer-encoding"]?.lowercased().contains("chunked") == true {
            return Response(status: status, body: try dechunk(body))
        }
        if let lengthText = headers["content-length"] {
            guard let length = Int(lengthText), length >= 0, length <= body.count else {
                throw Failure(description: "HTTP answer body shorter than its Content-Length \(lengthText)")
            }
            return Response(status: status, body: Data(body[0..<length]))
        }
        return Response(status: status, body: Data(body))
    }

    private static func dechunk(_ body: [UInt8]) throws(Failure) -> Data {
        var out = Data()
        var index = 0
        while true {
            guard let lineEnd = find([13, 10], in: body, from: index) else { throw Failure(description: "truncated chunked HTTP body") }
            let sizeText = String(decoding: body[index..<lineEnd], as: UTF8.self).split(separator: ";").first ?? ""
            guard let size = Int(sizeText.trimmingCharacters(in: .whitespaces), radix: 16), size >= 0 else {
                throw Failure(description: "bad chunk size in HTTP body")
            }
            index = lineEnd + 2
            if size == 0 { return out }
            guard size <= body.count - index else { throw Failure(description: "truncated chunked HTTP body") }
            out.append(contentsOf: body[index..<(index + size)])
            index += size + 2
        }
    }

    private static func find(_ needle: [UInt8], in haystack: [UInt8], from start: Int) -> Int? {
        guard haystack.count >= needle.count, start <= haystack.count - needle.count else { return nil }
        var i = start
        while i <= haystack.count - needle.count {
            if haystack[i] == needle[0] && Array(haystack[i..<(i + needle.count)]) == needle { return i }
            i += 1
        }
        return nil
    }
}
