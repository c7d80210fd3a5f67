import BuiltTools
import FlinkEngine
import Foundation
import SnapStore
import XCTest
#if canImport(Glibc)
import Glibc
#endif

/// What a finished command left behind.
struct Run {
    var status: Int32
    var out: String
    var err: String
    var timedOut: Bool
    var ok: Bool { status == 0 && !timedOut }
    var summary: String { "exit \(status)\(timedOut ? " (timed out)" : ""); stdout: \(out.prefix(2000)); stderr: \(err.prefix(2000))" }
}

/// Runs real commands with a deadline each, so a hang in the file system fails a test instead of blocking it.
enum Command {
    static func run(_ exe: String, _ args: [String], env: [String: String] = [:], timeout: TimeInterval = 120) -> Run {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: exe)
        p.arguments = args
        p.environment = ProcessInfo.processInfo.environment.merging(env) { $1 }
        let dir = URL(fileURLWithPath: NSTemporaryDirectory())
        let outURL = dir.appendingPathComponent("snapfs-cmd-\(UUID().uuidString).out")
        let errURL = dir.appendingPathComponent("snapfs-cmd-\(UUID().uuidString).err")
        _ = FileManager.default.createFile(atPath: outURL.path, contents: nil)
        _ = FileManager.default.createFile(atPath: errURL.path, contents: nil)
        defer { try? FileManager.default.removeItem(at: outURL); try? FileManager.default.removeItem(at: errURL) }
        let outH = FileHandle(forWritingAtPath: outURL.path)!, errH = FileHandle(forWritingAtPath: errURL.path)!
        p.standardOutput = outH
        p.standardError = errH
        p.standardInput = FileHandle.nullDevice
        let done = DispatchSemaphore(value: 0)
        p.terminationHandler = { _ in done.signal() }
        do { try p.run() } catch {
            return Run(status: -1, out: "", err: "cannot run \(exe): \(error)", timedOut: false)
        }
        var timedOut = false
        if done.wait(timeout: .now() + timeout) == .timedOut {
            timedOut = true
            kill(p.processIdentifier, SIGKILL)
            _ = done.wait(timeout: .now() + 10)
        }
        try? outH.close(); try? errH.close()
        let out = (try? String(contentsOf: outURL, encoding: .utf8)) ?? ""
        let err = (try? String(contentsOf: errURL, encoding: .utf8)) ?? ""
        return Run(status: timedOut ? -9 : p.terminationStatus, out: out, err: err, timedOut: timedOut)
    }

    static func sh(_ script: String, timeout: TimeInterval = 120) -> Run {
        run("/bin/bash", ["-c", script], timeout: timeout)
    }
}

/// The built `snapfs` next to the test bundle, or `SNAPFS_BIN`.
let snapfsBinary = BuiltTools.snapfs

/// Whether something is mounted at `path` (field 5 of /proc/self/mountinfo).
func isMountpoint(_ path: String) -> Bool {
    guard let text = try? String(contentsOfFile: "/proc/self/mountinfo", encoding: .utf8) else { return false }
    return text.split(separator: "\n").contains { $0.split(separator: " ").count > 4 && $0.split(separator: " ")[4] == path }
}

func shellQuote(_ s: String) -> String { "'" + s.replacingOccurrences(of: "'", with: "'\\''") + "'" }

/// A store, its live state directory and a mountpoint under one temporary directory, with the daemon started and
/// stopped as a user would. Teardown always unmounts (`fusermount3 -u`, then `-uz`) so no test leaves a mount.
final class MountWorkspace {
    let root: URL
    let state: URL
    let storeDir: URL
    let mnt: URL
    let expected: URL
    private(set) var daemon: Process?
    private var logIndex = 0
    var m: String { mnt.path }
    var s: String { storeDir.path }

    init() throws {
        root = URL(fileURLWithPath: "/tmp").appendingPathComponent("snapfs-mount-\(UUID().uuidString.prefix(8))")
        state = root.appendingPathComponent("state")
        storeDir = root.appendingPathComponent("store")
        mnt = root.appendingPathComponent("mnt")
        expected = root.appendingPathComponent("expected")
        for d in [state, mnt, expected] { try FileManager.default.createDirectory(at: d, withIntermediateDirectories: true) }
        let r = snapfs(["init", s, "--state", state.path])
        guard r.ok else {
            XCTFail("snapfs init failed (\(snapfsBinary)): \(r.summary)")
            throw NSError(domain: "MountTests", code: 3)
        }
    }

    func cleanup() {
        unmount()
        if !isMounted() { try? FileManager.default.removeItem(at: root) }
    }

    @discardableResult
    func snapfs(_ args: [String], timeout: TimeInterval = 120) -> Run { Command.run(snapfsBinary, args, timeout: timeout) }

    // MARK: state

    func writeState(_ path: String, bytes: Int, seed: UInt64) throws {
        let url = state.appendingPathComponent(path)
        try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        var x = seed &+ 0x9E37_79B9_7F4A_7C15
        var data = [UInt8](repeating: 0, count: bytes)
        for i in 0..<bytes {
            if i % 8 == 0 { x ^= x << 13; x ^= x >> 7; x ^= x << 17 }
            data[i] = UInt8(truncatingIfNeeded: x >> ((i % 8) * 8))
        }
        try Data(data).write(to: url)
    }

    /// A job's state: nested files of assorted sizes (one larger than a FUSE read), an empty file and a symlink.
    func populate(files: Int = 24, seed: UInt64 = 1) throws {
        for i in 0..<files {
            try writeState("dir\(i % 3)/sub\(i % 2)/file-\(i).dat", bytes: 1000 + (i * 7919) % 60000, seed: seed &* 1000 &+ UInt64(i))
        }
        try writeState("big.dat", bytes: 3 * 1024 * 1024 + 123, seed: seed &+ 77)
        try writeState("empty", bytes: 0, seed: 0)
        try? FileManager.default.removeItem(at: state.appendingPathComponent("link"))
        try FileManager.default.createSymbolicLink(atPath: state.appendingPathComponent("link").path, withDestinationPath: "dir0/sub0/file-0.dat")
    }

    /// Takes a snapshot with the command line and keeps a copy of the state it captured, to compare with later.
    @discardableResult
    func snapshot(_ label: String, format: String = "native-incremental") throws -> Run {
        let r = snapfs(["trigger", s, "--format", format, "--label", label])
        XCTAssertTrue(r.ok, r.summary)
        try keepExpected(label)
        return r
    }

    func keepExpected(_ label: String) throws {
        let r = Command.sh("cp -a \(shellQuote(state.path)) \(shellQuote(expected.appendingPathComponent(label).path))")
        XCTAssertTrue(r.ok, r.summary)
    }

    // MARK: mount

    func isMounted() -> Bool { isMountpoint(m) }

    var logURL: URL { root.appendingPathComponent("daemon-\(logIndex).log") }

    func log() -> String { (try? String(contentsOf: logURL, encoding: .utf8)) ?? "" }

    /// Starts the daemon and waits until the kernel lists the mount (or the daemon exits, which fails the test).
    func mount(_ extra: [String] = [], store: String? = nil, file: StaticString = #filePath, line: UInt = #line) throws {
        logIndex += 1
        _ = FileManager.default.createFile(atPath: logURL.path, contents: nil)
        let p = Process()
        p.executableURL = URL(fileURLWithPath: snapfsBinary)
        p.arguments = ["mount", store ?? s, m] + extra
        let h = FileHandle(forWritingAtPath: logURL.path)!
        p.standardOutput = h
        p.standardError = h
        p.standardInput = FileHandle.nullDevice
        try p.run()
        daemon = p
        let deadline = Date().addingTimeInterval(30)
        while Date() < deadline {
            // statfs reaches the daemon, so a stale mount left by a killed one does not count.
            var v = statvfs()
            if isMounted() && statvfs(m, &v) == 0 { return }
            if !p.isRunning { break }
            usleep(50_000)
        }
        XCTFail("daemon did not mount: \(log())", file: file, line: line)
        throw NSError(domain: "mount", code: 1)
    }

    /// `fusermount3 -u`; then the lazy variant and SIGKILL if the daemon does not go.
    func unmount() {
        if isMounted() { _ = Command.run("/bin/fusermount3", ["-u", m], timeout: 30) }
        if let p = daemon {
            let deadline = Date().addingTimeInterval(30)
            while p.isRunning && Date() < deadline { usleep(50_000) }
            if p.isRunning { kill(p.processIdentifier, SIGKILL); p.waitUntilExit() }
        }
        daemon = nil
        if isMounted() { _ = Command.run("/bin/fusermount3", ["-u", "-z", m], timeout: 30) }
    }

    /// SIGKILL, as a crash would: the kernel keeps a dead mount until it is cleared.
    func killDaemon() {
        guard let p = daemon else { return }
        kill(p.processIdentifier, SIGKILL)
        p.waitUntilExit()
        daemon = nil
    }

    // MARK: checks

    /// `.snapfs/status` as JSON, read with `cat`: the file is generated on each read (direct I/O), so its length can
    /// change between `stat` and `read`; a reader that stops at `st_size`, as Foundation's does, may cut it short.
    func status() throws -> [String: Any] {
        let r = Command.sh("cat \(shellQuote(m + "/.snapfs/status"))")
        guard r.ok else { XCTFail("cat .snapfs/status: \(r.summary)"); throw NSError(domain: "status", code: 1) }
        return try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(r.out.utf8)) as? [String: Any], r.out)
    }

    /// What plain `ls` shows at the root (`.snapfs` is hidden by its dot).
    func rootNames() -> [String] { ((try? FileManager.default.contentsOfDirectory(atPath: m)) ?? []).filter { !$0.hasPrefix(".") }.sorted() }

    /// The errno a system call returns, straight from the kernel (coreutils rewords some, e.g. EINVAL from rename).
    func errnoOf(_ python: String) -> String {
        Command.run("/usr/bin/env", ["python3", "-c", "import os, errno\ntry:\n    \(python)\n    print('OK')\nexcept OSError as e:\n    print(errno.errorcode[e.errno])"]).out
            .trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// The store as the daemon opens it: with every engine's rules, so a Flink store gets Flink's.
    func openStore() throws -> Store { try Store.open(at: storeDir, rules: [FlinkRules()]) }

    func verifyClean(file: StaticString = #filePath, line: UInt = #line) {
        let r = snapfs(["verify", s, "--json"], timeout: 300)
        XCTAssertTrue(r.ok, "verify: \(r.summary)", file: file, line: line)
    }
}

/// Every file's SHA-256, every symlink's target and every directory of a tree, by relative path.
func treeDigest(_ dir: String) -> [String: String] {
    var out: [String: String] = [:]
    guard let en = FileManager.default.enumerator(atPath: dir) else { return out }
    while let rel = en.nextObject() as? String {
        let p = dir + "/" + rel
        var st = stat()
        guard lstat(p, &st) == 0 else { out[rel] = "unreadable"; continue }
        switch st.st_mode & S_IFMT {
        case S_IFREG: out[rel] = "\(st.st_size):" + (Store.sha256(ofFile: p) ?? "unreadable")
        case S_IFLNK: out[rel] = "-> " + ((try? FileManager.default.destinationOfSymbolicLink(atPath: p)) ?? "?")
        case S_IFDIR: out[rel] = "dir"
        default: out[rel] = "other"
        }
    }
    return out
}

/// Fails with a clear message when FUSE is missing, unless the run opted out with SNAPFS_SKIP_MOUNT_TESTS=1.
func requireFUSE() throws {
    if ProcessInfo.processInfo.environment["SNAPFS_SKIP_MOUNT_TESTS"] == "1" {
        throw XCTSkip("SNAPFS_SKIP_MOUNT_TESTS=1")
    }
    guard FileManager.default.fileExists(atPath: "/dev/fuse") else {
        XCTFail("/dev/fuse is missing: mount tests need FUSE (load the fuse module, or give the container --device /dev/fuse); set SNAPFS_SKIP_MOUNT_TESTS=1 to skip them")
        throw NSError(domain: "MountTests", code: 1)
    }
    guard FileManager.default.isExecutableFile(atPath: "/bin/fusermount3") else {
        XCTFail("fusermount3 is missing: apt-get install fuse3")
        throw NSError(domain: "MountTests", code: 2)
    }
}

class MountTestCase: XCTestCase {
    var w: MountWorkspace!

    override func setUpWithError() throws {
        try requireFUSE()
        w = try MountWorkspace()
    }

    override func tearDown() {
        w?.cleanup()
        w = nil
    }
}
