import Foundation
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// A JobManager stand-in on 127.0.0.1: answers Flink REST paths from a routing closure, one request per
/// connection, so trigger and recovery-point logic can be tested without a cluster.
public final class FakeFlink: Sendable {
    public typealias Route = @Sendable (_ method: String, _ path: String, _ body: String) -> (Int, String)
    public let port: UInt16
    private let fd: Int32
    private let route: Route
    private let requests = Mutex<[String]>([])
    private let stopped = Mutex(false)

    public var url: String { "http://127.0.0.1:\(port)" }
    public var seen: [String] { requests.withLock { $0 } }

    public init(route: @escaping Route) throws {
        self.route = route
        let sock = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var one: Int32 = 1
        setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        addr.sin_port = 0
        let bound = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(sock, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        guard bound == 0, listen(sock, 16) == 0 else { close(sock); throw POSIXError(.EADDRINUSE) }
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(sock, $0, &len) } }
        fd = sock
        port = UInt16(bigEndian: addr.sin_port)
        let thread = Thread { [self] in serve() }
        thread.start()
    }

    public func stop() {
        stopped.withLock { $0 = true }
        shutdown(fd, Int32(SHUT_RDWR))
        close(fd)
    }

    private func serve() {
        while !stopped.withLock({ $0 }) {
            let client = accept(fd, nil, nil)
            if client < 0 { return }
            handle(client)
            close(client)
        }
    }

    private func handle(_ client: Int32) {
        var data = [UInt8]()
        var buffer = [UInt8](repeating: 0, count: 4096)
        var headerEnd: Int?
        var contentLength = 0
        while true {
            let n = buffer.withUnsafeMutableBytes { recv(client, $0.baseAddress, $0.count, 0) }
            if n <= 0 { return }
            data += buffer[0..<n]
            if headerEnd == nil, let r = String(decoding: data, as: UTF8.self).range(of: "\r\n\r\n") {
                let head = String(decoding: data, as: UTF8.self)[..<r.lowerBound]
                headerEnd = String(decoding: data, as: UTF8.self).utf8.distance(from: String(decoding: data, as: UTF8.self).startIndex, to: r.upperBound)
                for line in head.split(separator: "\r\n") where line.lowercased().hasPrefix("content-length:") {
                    contentLength = Int(line.split(separator: ":")[1].trimmingCharacters(in: .whitespaces)) ?? 0
                }
            }
            if let h = headerEnd, data.count >= h + contentLength { break }
        }
        let text = String(decoding: data, as: UTF8.self)
        let first = text.split(separator: "\r\n").first?.split(separator: " ") ?? []
        guard first.count >= 2 else { return }
        let method = String(first[0]), path = String(first[1])
        let body = headerEnd.map { String(decoding: data[$0...], as: UTF8.self) } ?? ""
        requests.withLock { $0.append("\(method) \(path)") }
        let (status, json) = route(method, path, body)
        let payload = Array(json.utf8)
        let response = "HTTP/1.1 \(status) X\r\nContent-Type: application/json\r\nContent-Length: \(payload.count)\r\nConnection: close\r\n\r\n"
        let out = Array(response.utf8) + payload
        _ = out.withUnsafeBytes { send(client, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
    }
}

/// A cluster's answers to `GET /jobs/overview` and `GET /jobs/:id/checkpoints`, from a table the test changes as
/// the cluster would (a job cancelled, a checkpoint completed).
public final class FakeCluster: Sendable {
    public struct Job: Sendable {
        public var state: String
        /// `latest.completed`: id and store-relative directory (written as Flink would, under `writtenAt`).
        public var latest: (id: Int64, directory: String)?
        public var isSavepoint = false
        /// `history`: id → trigger and completion times in milliseconds.
        public var history: [Int64: (trigger: Double, ack: Double)] = [:]

        public init(state: String, latest: (id: Int64, directory: String)? = nil, isSavepoint: Bool = false,
                    history: [Int64: (trigger: Double, ack: Double)] = [:]) {
            self.state = state; self.latest = latest; self.isSavepoint = isSavepoint; self.history = history
        }
    }

    public let writtenAt: String
    public let jobs: Mutex<[String: Job]>

    public init(writtenAt: String, jobs: [String: Job]) {
        self.writtenAt = writtenAt
        self.jobs = Mutex(jobs)
    }

    public func set(_ job: String, state: String) { jobs.withLock { $0[job]?.state = state } }

    /// The answer, or nil for any other path.
    public func answer(_ method: String, _ path: String) -> (Int, String)? {
        guard method == "GET" else { return nil }
        let table = jobs.withLock { $0 }
        if path == "/jobs/overview" {
            let list = table.map { #"{"jid":"\#($0.key)","name":"job","state":"\#($0.value.state)"}"# }
            return (200, #"{"jobs":[\#(list.joined(separator: ","))]}"#)
        }
        let parts = path.split(separator: "/")
        guard parts.count == 3, parts[0] == "jobs", parts[2] == "checkpoints" else { return nil }
        guard let job = table[String(parts[1])] else { return (404, #"{"errors":["Job not found"]}"#) }
        let latest = job.latest.map {
            #"{"id":\#($0.id),"is_savepoint":\#(job.isSavepoint),"external_path":"\#(writtenAt)/\#($0.directory)"}"#
        } ?? "null"
        let history = job.history.map {
            #"{"id":\#($0.key),"status":"COMPLETED","trigger_timestamp":\#(Int64($0.value.trigger)),"latest_ack_timestamp":\#(Int64($0.value.ack))}"#
        }
        return (200, #"{"latest":{"completed":\#(latest),"restored":null},"history":[\#(history.joined(separator: ","))]}"#)
    }

    /// A fake JobManager serving this table, and `other` for every other path.
    public func serve(other: @escaping FakeFlink.Route = { _, _, _ in (404, #"{"errors":["Not found"]}"#) }) throws -> FakeFlink {
        try FakeFlink { [self] method, path, body in answer(method, path) ?? other(method, path, body) }
    }
}
