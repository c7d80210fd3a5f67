import Foundation
import S3Client
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// The S3 implementations the tests run against: both real servers, started by the checkout's own scripts.
public enum S3ServerKind: String, Sendable, CaseIterable, CustomStringConvertible {
    /// Ceph's RADOS Gateway (the default): a monitor, an OSD and radosgw.
    case rgw
    /// SeaweedFS: `weed server` and its S3 gateway `weed s3`.
    case seaweedfs

    public var description: String { self == .rgw ? "Ceph RGW" : "SeaweedFS" }
}

/// Why a server could not be had.
public struct S3ServerError: Error, CustomStringConvertible {
    public var description: String
    public init(description: String) { self.description = description }
}

/// One real S3 server on 127.0.0.1, in a temporary directory of its own, on ports chosen free when it starts.
///
/// Its start script writes one PID file per daemon; `stop()` kills each of those PIDs and waits for it to exit,
/// and a watchdog kills them too if the test process dies first, so no server outlives its test run.
public final class S3TestServer: Sendable {
    public static let accessKey = "snapfsAK"
    public static let secretKey = "snapfsSECRETkey123"
    public static let region = "us-east-1"

    public let kind: S3ServerKind
    public let directory: URL
    public let port: Int
    public var endpoint: S3Endpoint { S3Endpoint(url: URL(string: "http://127.0.0.1:\(port)")!, region: Self.region, pathStyle: true) }
    public var credentials: S3Credentials { S3Credentials(accessKeyId: Self.accessKey, secretAccessKey: Self.secretKey) }

    /// The checkout's Scripts directory (this file is <checkout>/Tests/S3TestSupport/S3Servers.swift).
    static var scripts: URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Scripts")
    }

    private init(kind: S3ServerKind, directory: URL, port: Int) {
        self.kind = kind
        self.directory = directory
        self.port = port
    }

    /// Starts one server and returns once it answers S3 requests with the test user in place.
    public static func start(_ kind: S3ServerKind) throws -> S3TestServer {
        let dir = URL(fileURLWithPath: NSTemporaryDirectory()).appendingPathComponent("snapfs-s3-\(kind.rawValue)-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let arguments: [String]
        let port: Int
        switch kind {
        case .rgw:
            let ports = try FreePorts.pick(2)
            port = ports[1]
            arguments = [scripts.appendingPathComponent("s3-rgw-up").path, dir.path, String(ports[0]), String(ports[1]),
                         String(try FreePorts.range(of: 50))]
        case .seaweedfs:
            let ports = try FreePorts.pick(8)
            port = ports[0]
            arguments = [scripts.appendingPathComponent("s3-seaweedfs-up").path, dir.path] + ports.map(String.init)
        }
        let server = S3TestServer(kind: kind, directory: dir, port: port)
        try server.watchOwner()
        let log = dir.appendingPathComponent("start.log")
        let status = try run(arguments, log: log)
        guard status == 0 else {
            let text = (try? String(contentsOf: log, encoding: .utf8)) ?? ""
            server.stop()
            throw S3ServerError(description: "\(kind) did not start (exit \(status)): \(text.suffix(1500))\n"
                + "Scripts/install-deps installs it; SNAPFS_SKIP_S3_TESTS=1 skips the S3 tests where no S3 server can run")
        }
        return server
    }

    /// Kills every daemon this server's script started (TERM, then KILL after a grace period), waits for each to be
    /// gone, and removes the directory.
    public func stop() {
        let pids = pidFiles().compactMap { Self.readPID($0) }
        for pid in pids where pid > 0 { kill(pid, SIGTERM) }
        let deadline = Date().addingTimeInterval(8)
        for pid in pids where pid > 0 {
            while Self.alive(pid) && Date() < deadline { usleep(100_000) }
            if Self.alive(pid) {
                kill(pid, SIGKILL)
                while Self.alive(pid) { usleep(50_000) }
            }
        }
        try? FileManager.default.removeItem(at: directory)
    }

    /// Kills the S3 front (radosgw, or `weed s3`) with SIGKILL, as a crash would; the storage behind it stays.
    public func killGateway() {
        let file = gatewayPIDFile
        guard let pid = Self.readPID(file), pid > 0 else { return }
        kill(pid, SIGKILL)
        while Self.alive(pid) { usleep(50_000) }
    }

    /// Whether `pid` still runs; reaps it first if it is a child of this process (a zombie would look alive).
    static func alive(_ pid: pid_t) -> Bool {
        var status: Int32 = 0
        if waitpid(pid, &status, WNOHANG) == pid { return false }
        return kill(pid, 0) == 0
    }

    /// Starts the S3 front again with the command the script used, and waits until it answers.
    public func restartGateway() throws {
        let command = try String(contentsOf: directory.appendingPathComponent(kind == .rgw ? "rgw.cmd" : "s3.cmd"), encoding: .utf8)
            .trimmingCharacters(in: .whitespacesAndNewlines)
        let script = "nohup \(command) >> \(directory.path)/gateway-restart.log 2>&1 & echo $! > \(gatewayPIDFile.path)\n"
            + "for _ in $(seq 1 200); do curl -s -o /dev/null http://127.0.0.1:\(port)/ && exit 0; sleep 0.2; done; exit 1"
        let status = try Self.run(["/bin/bash", "-c", script], log: directory.appendingPathComponent("gateway-restart.out"))
        guard status == 0 else { throw S3ServerError(description: "\(kind): the S3 gateway did not answer again on port \(port)") }
    }

    private var gatewayPIDFile: URL { directory.appendingPathComponent(kind == .rgw ? "rgw.pid" : "s3.pid") }

    private func pidFiles() -> [URL] {
        let names = kind == .rgw ? ["watchdog.pid", "rgw.pid", "osd.pid", "mon.pid"] : ["watchdog.pid", "s3.pid", "server.pid"]
        return names.map { directory.appendingPathComponent($0) }
    }

    /// A shell loop that outlives nothing: once this test process is gone, it kills the daemons and removes the directory.
    private func watchOwner() throws {
        let others = pidFiles().dropFirst().map(\.path).joined(separator: " ")
        let script = "while kill -0 \(getpid()) 2>/dev/null; do sleep 2; done; "
            + "for f in \(others); do [ -f \"$f\" ] && kill -9 $(cat \"$f\") 2>/dev/null; done; sleep 1; rm -rf '\(directory.path)'"
        let pid = try Self.spawn(["/bin/bash", "-c", script], log: "/dev/null")
        try String(pid).write(to: directory.appendingPathComponent("watchdog.pid"), atomically: true, encoding: .utf8)
    }

    private static func readPID(_ file: URL) -> pid_t? {
        (try? String(contentsOf: file, encoding: .utf8)).flatMap { pid_t($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
    }

    /// Runs a command to its end, its output and errors to `log`, and returns its exit status.
    ///
    /// posix_spawn and waitpid rather than Foundation's Process, whose waitUntilExit was seen never returning
    /// for a script that leaves daemons running behind it.
    @discardableResult
    static func run(_ arguments: [String], log: URL) throws -> Int32 {
        let pid = try spawn(arguments, log: log.path)
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 {
            guard errno == EINTR else { throw S3ServerError(description: "waitpid: \(String(cString: strerror(errno)))") }
        }
        let exited = status & 0x7f == 0
        return exited ? (status >> 8) & 0xff : 128 + (status & 0x7f)
    }

    /// Starts a command with stdin from /dev/null and stdout and stderr appended to `log`; returns its PID.
    static func spawn(_ arguments: [String], log: String) throws -> pid_t {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, log, O_WRONLY | O_CREAT | O_APPEND, 0o644)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        guard arguments.first?.hasPrefix("/") == true else { throw S3ServerError(description: "not an absolute path: \(arguments.first ?? "")") }
        let argv: [UnsafeMutablePointer<CChar>?] = arguments.map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        var pid: pid_t = 0
        let rc = posix_spawn(&pid, arguments[0], &actions, nil, argv, environ)
        guard rc == 0 else { throw S3ServerError(description: "cannot start \(arguments[0]): \(String(cString: strerror(rc)))") }
        return pid
    }
}

/// Servers for one test class: started once (in parallel) by `class func setUp`, stopped by `class func tearDown`.
/// A test asks `servers()`: it fails naming what went wrong when a server did not start, and skips only when
/// `SNAPFS_SKIP_S3_TESTS=1` says so.
public final class S3TestServers: Sendable {
    private let started: Mutex<[S3ServerKind: Result<S3TestServer, S3ServerError>]> = Mutex([:])
    public let kinds: [S3ServerKind]

    public static var skipRequested: Bool { ProcessInfo.processInfo.environment["SNAPFS_SKIP_S3_TESTS"] == "1" }

    /// `SNAPFS_S3_SERVERS=rgw` (or `seaweedfs`) narrows the kinds, for a quicker local run.
    public init(kinds: [S3ServerKind] = S3ServerKind.allCases) {
        if let only = ProcessInfo.processInfo.environment["SNAPFS_S3_SERVERS"] {
            let wanted = only.split(separator: ",").compactMap { S3ServerKind(rawValue: String($0)) }
            self.kinds = kinds.filter { wanted.contains($0) }
        } else {
            self.kinds = kinds
        }
    }

    public func startAll() {
        guard !Self.skipRequested else { return }
        let results = Mutex<[S3ServerKind: Result<S3TestServer, S3ServerError>]>([:])
        let group = DispatchGroup()
        for kind in kinds {
            group.enter()
            Thread {
                let result: Result<S3TestServer, S3ServerError>
                do { result = .success(try S3TestServer.start(kind)) } catch let error as S3ServerError {
                    result = .failure(error)
                } catch { result = .failure(S3ServerError(description: "\(kind) did not start: \(error)")) }
                results.withLock { $0[kind] = result }
                group.leave()
            }.start()
        }
        group.wait()
        let all = results.withLock { $0 }
        started.withLock { $0 = all }
    }

    public func stopAll() {
        let all = started.withLock { current -> [S3ServerKind: Result<S3TestServer, S3ServerError>] in
            defer { current = [:] }
            return current
        }
        let group = DispatchGroup()
        for case .success(let server) in all.values {
            group.enter()
            Thread { server.stop(); group.leave() }.start()
        }
        group.wait()
    }

    /// The running servers, in `kinds` order. Throws `S3ServerError` if any did not start; callers turn
    /// `skipRequested` into an XCTSkip before asking.
    public func servers() throws -> [S3TestServer] {
        let all = started.withLock { $0 }
        return try kinds.map { kind in
            guard let result = all[kind] else { throw S3ServerError(description: "\(kind) was not started (startAll not called)") }
            return try result.get()
        }
    }
}

/// Free TCP ports on 127.0.0.1, as the kernel hands them out (bound to port 0, then released).
enum FreePorts {
    static func pick(_ count: Int) throws -> [Int] {
        var fds: [Int32] = []
        defer { fds.forEach { close($0) } }
        var ports: [Int] = []
        for _ in 0..<count {
            let (fd, port) = try bind(0)
            fds.append(fd)
            ports.append(port)
        }
        return ports
    }

    /// The first port of `count` consecutive free ports below the kernel's ephemeral range.
    static func range(of count: Int) throws -> Int {
        for _ in 0..<50 {
            let base = Int.random(in: 20000...(32000 - count))
            var fds: [Int32] = []
            var ok = true
            for p in base..<(base + count) {
                if let (fd, _) = try? bind(p) { fds.append(fd) } else { ok = false; break }
            }
            fds.forEach { close($0) }
            if ok { return base }
        }
        throw S3ServerError(description: "no \(count) consecutive free ports found")
    }

    private static func bind(_ port: Int) throws -> (Int32, Int) {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        addr.sin_port = in_port_t(UInt16(port).bigEndian)
        let bound = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0 else { close(fd); throw S3ServerError(description: "port \(port) in use") }
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
        return (fd, Int(UInt16(bigEndian: addr.sin_port)))
    }
}
