import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A TCP proxy in front of an S3 server that can hold back requests of one method (DeleteObjects is the only
/// POST SnapFS sends): the way a test catches a `snapfs` in the middle of a batch, to kill it there or to restart
/// the server under it. Everything else passes through untouched.
final class StallingProxy: @unchecked Sendable {
    let port: Int
    private let target: Int
    private let listener: Int32
    private let state = NSLock()
    private var holding = false
    private var held = 0

    init(target: Int) throws {
        self.target = target
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        var address = Self.loopback(port: 0)
        let bound = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        guard bound == 0, listen(fd, 64) == 0 else { close(fd); throw NSError(domain: "proxy", code: Int(errno)) }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) } }
        listener = fd
        port = Int(UInt16(bigEndian: address.sin_port))
        Thread.detachNewThread { [self] in acceptLoop() }
    }

    /// Holds back (or, with false, lets through) every request that starts with `POST `.
    func hold(_ on: Bool) { state.lock(); holding = on; state.unlock() }
    /// Requests held back so far.
    var heldRequests: Int { state.lock(); defer { state.unlock() }; return held }

    func stop() { shutdown(listener, Int32(SHUT_RDWR)); close(listener) }

    private static func loopback(port: Int) -> sockaddr_in {
        var a = sockaddr_in()
        a.sin_family = sa_family_t(AF_INET)
        a.sin_port = UInt16(port).bigEndian
        a.sin_addr.s_addr = inet_addr("127.0.0.1")
        return a
    }

    private func acceptLoop() {
        while true {
            let client = accept(listener, nil, nil)
            if client < 0 { return }
            Thread.detachNewThread { [self] in serve(client) }
        }
    }

    private func serve(_ client: Int32) {
        let server = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = Self.loopback(port: target)
        let connected = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(server, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        guard connected == 0 else { close(server); close(client); return }
        Thread.detachNewThread { Self.pump(from: server, to: client, inspect: nil) }
        Self.pump(from: client, to: server) { [self] chunk in
            guard chunk.starts(with: Array("POST ".utf8)) else { return }
            var counted = false
            while true {
                state.lock()
                let on = holding
                if on && !counted { held += 1; counted = true }
                state.unlock()
                if !on { return }
                usleep(20_000)
            }
        }
    }

    private static func pump(from: Int32, to: Int32, inspect: ((ArraySlice<UInt8>) -> Void)?) {
        var buffer = [UInt8](repeating: 0, count: 64 << 10)
        while true {
            let n = read(from, &buffer, buffer.count)
            if n <= 0 { break }
            inspect?(buffer[0..<n])
            var sent = 0
            while sent < n {
                let w = buffer[sent..<n].withUnsafeBytes { write(to, $0.baseAddress, n - sent) }
                if w <= 0 { break }
                sent += w
            }
            if sent < n { break }
        }
        shutdown(to, Int32(SHUT_RDWR))
        shutdown(from, Int32(SHUT_RDWR))
        close(from)
    }
}
