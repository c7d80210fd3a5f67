import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Proof that a process is alive, as a file lock: an interrupted operation records its owner's token, and a later
/// opener that can take the token's lock knows the owner died and may finish or roll back its work. Unlike a pid,
/// a lock cannot be mistaken for a new process that reused the number.
final class OwnerLock: Sendable {
    let token: String
    private let fd: Int32
    private let path: String

    /// Creates and holds a fresh token under `dir` for as long as this object lives.
    init(directory dir: URL) throws {
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        token = "\(getpid())-\(UInt64.random(in: 0...UInt64.max) & 0xffff_ffff_ffff)"
        path = dir.appendingPathComponent(token + ".lock").path
        fd = open(path, O_CREAT | O_RDWR | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw StoreError.io(path: path, errno: errno, what: "cannot create owner lock") }
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
            close(fd); throw StoreError.io(path: path, errno: errno, what: "cannot lock")
        }
    }

    private init(unheldToken: String) {
        token = unheldToken
        fd = -1
        path = ""
    }

    /// A token no lock file stands for, for a process that only reads: it records nothing another process would
    /// have to ask about.
    static func unheld() -> OwnerLock { OwnerLock(unheldToken: "reader-\(getpid())") }

    deinit {
        guard fd >= 0 else { return }
        unlink(path)
        close(fd)
    }

    /// Whether the process that holds `token` under `dir` is still running.
    static func isAlive(_ token: String, in dir: URL) -> Bool {
        let p = dir.appendingPathComponent(token + ".lock").path
        let fd = open(p, O_RDWR | O_CLOEXEC)
        if fd < 0 { return false }
        defer { close(fd) }
        if flock(fd, LOCK_EX | LOCK_NB) == 0 {
            unlink(p)
            flock(fd, LOCK_UN)
            return false
        }
        return true
    }
}

/// The one-daemon-per-store rule: an exclusive lock a second daemon cannot take.
public final class DaemonLock: Sendable {
    private let fd: Int32

    public init(store root: URL) throws(StoreError) {
        let dir = root.appendingPathComponent(Store.runDirectory)
        try? FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        let path = dir.appendingPathComponent("daemon.lock").path
        let fd = open(path, O_CREAT | O_RDWR | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw .io(path: path, errno: errno, what: "cannot open daemon lock") }
        if flock(fd, LOCK_EX | LOCK_NB) != 0 {
            var buf = [UInt8](repeating: 0, count: 64)
            let n = pread(fd, &buf, 63, 0)
            let who = n > 0 ? String(decoding: buf[0..<n], as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines) : "?"
            close(fd)
            throw .locked("another snapfs daemon (pid \(who)) already serves the store at \(root.path)")
        }
        ftruncate(fd, 0)
        let pid = "\(getpid())\n"
        _ = pid.withCString { pwrite(fd, $0, strlen($0), 0) }
        self.fd = fd
    }

    deinit { close(fd) }
}

/// Work that must not run twice at once among every process using the store (two intents on one job, one from the
/// daemon and one from the command line): an exclusive lock on `run/<name>.lock`. The kernel drops it when its
/// holder exits or dies, so a crash never leaves it behind; the file itself stays, since unlinking a lock file
/// another process is about to take would let two hold it.
public final class ExclusiveLock: Sendable {
    private let fd: Int32

    fileprivate init(fd: Int32) { self.fd = fd }

    deinit {
        flock(fd, LOCK_UN)
        close(fd)
    }
}

extension Store {
    /// Takes the lock called `name` (a word: letters, digits, `-`, `.`), or returns nil while anyone else holds it,
    /// in this process or another.
    public func tryExclusiveLock(_ name: String) throws(StoreError) -> ExclusiveLock? {
        guard !name.isEmpty, name.utf8.count <= 200,
              name.unicodeScalars.allSatisfy({ CharacterSet.alphanumerics.contains($0) && $0.isASCII || $0 == "-" || $0 == "." }),
              !name.hasPrefix(".") else {
            throw .badInput("a lock name must be letters, digits, '-' and '.', not \(name)")
        }
        if isReadOnly { throw .readOnly("the store at \(root.path) is read-only: nothing that changes it can run") }
        try? FileManager.default.createDirectory(at: runDir, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        let path = runDir.appendingPathComponent(name + ".lock").path
        let fd = Glibc.open(path, O_CREAT | O_RDWR | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw .io(path: path, errno: errno, what: "cannot open lock") }
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
            let e = errno
            close(fd)
            if e == EWOULDBLOCK { return nil }
            throw .io(path: path, errno: e, what: "cannot lock")
        }
        return ExclusiveLock(fd: fd)
    }
}
