import Foundation
import XCTest
#if canImport(Glibc)
import Glibc
#endif

/// The kernel's requests to this mount, as its `fuse:fuse_request_send` tracepoint sees them, in a trace instance of
/// its own (so other tracers on the machine neither see nor disturb it), filtered to one opcode on one connection.
final class FUSERequestTrace {
    let dir: String

    /// FUSE_LOOKUP's opcode in the kernel's protocol.
    static let lookup = 1

    /// Nil when the kernel has no tracefs or no FUSE tracepoint (before Linux 6.8).
    init?(mountpoint: String, opcode: Int) throws {
        var tracing = "/sys/kernel/tracing"
        if !FileManager.default.fileExists(atPath: tracing + "/events") {
            _ = Command.run("/bin/mount", ["-t", "tracefs", "nodev", tracing])
        }
        if !FileManager.default.fileExists(atPath: tracing + "/events") { tracing = "/sys/kernel/debug/tracing" }
        guard FileManager.default.fileExists(atPath: tracing + "/events/fuse/fuse_request_send") else { return nil }
        dir = "\(tracing)/instances/snapfs-test-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: false)
        // The connection is the mount's device number as the kernel keeps it (major << 20 | minor).
        var st = stat()
        guard stat(mountpoint, &st) == 0 else { throw NSError(domain: "trace", code: Int(errno)) }
        let dev = UInt64(st.st_dev)
        let major = ((dev >> 8) & 0xfff) | ((dev >> 32) & ~0xfff)
        let minor = (dev & 0xff) | ((dev >> 12) & ~0xff)
        let event = dir + "/events/fuse/fuse_request_send"
        try write("opcode == \(opcode) && connection == \(major << 20 | minor)", to: event + "/filter")
        try write("1", to: event + "/enable")
        clear()
    }

    private func write(_ s: String, to path: String) throws {
        try Data((s + "\n").utf8).write(to: URL(fileURLWithPath: path))
    }

    /// Empties the instance's buffer.
    func clear() {
        let fd = open(dir + "/trace", O_WRONLY | O_TRUNC)
        if fd >= 0 { close(fd) }
    }

    /// Requests recorded since the last `clear`.
    func count() -> Int {
        let text = (try? String(contentsOfFile: dir + "/trace", encoding: .utf8)) ?? ""
        return text.split(separator: "\n").filter { !$0.hasPrefix("#") && $0.contains("fuse_request_send") }.count
    }

    func remove() {
        try? write("0", to: dir + "/events/fuse/fuse_request_send/enable")
        rmdir(dir)
    }
}

/// Negative entries, `..`, and FORGET through a real mount.
final class LookupForgetMountTests: MountTestCase {
    /// `nodes` from `.snapfs/status`: what the daemon holds for the kernel.
    private func nodes() throws -> Int {
        let json = try w.status()
        return try XCTUnwrap(json["nodes"] as? Int, "status has no nodes: \(json)")
    }

    func testASecondStatOfAMissingNameInASnapshotSendsNoLookup() throws {
        try w.populate(files: 6)
        try w.snapshot("one")
        try w.mount()
        let snap = try XCTUnwrap(w.rootNames().first { $0 != "latest" })
        guard let trace = try FUSERequestTrace(mountpoint: w.m, opcode: FUSERequestTrace.lookup) else {
            throw XCTSkip("this kernel has no fuse:fuse_request_send tracepoint (tracefs, Linux 6.8 or later)")
        }
        defer { trace.remove() }
        var st = stat()

        let missing = "\(w.m)/\(snap)/dir0/no-such-file"
        XCTAssertEqual(stat(missing, &st), -1)
        XCTAssertEqual(errno, ENOENT)
        XCTAssertGreaterThan(trace.count(), 0, "the first stat asks the daemon (the trace sees this mount's LOOKUPs)")
        trace.clear()
        XCTAssertEqual(stat(missing, &st), -1)
        XCTAssertEqual(errno, ENOENT)
        XCTAssertEqual(trace.count(), 0, "the kernel kept the miss: no LOOKUP for the second stat")

        // At the root a snapshot may appear at any moment: a miss there is asked again every time.
        let atRoot = "\(w.m)/two"
        XCTAssertEqual(stat(atRoot, &st), -1)
        trace.clear()
        XCTAssertEqual(stat(atRoot, &st), -1)
        XCTAssertEqual(errno, ENOENT)
        XCTAssertEqual(trace.count(), 1, "a miss at the root is not kept")

        // So a snapshot taken after that miss is found at once.
        try w.snapshot("two")
        XCTAssertEqual(stat(atRoot, &st), 0, "the snapshot made after the miss")
    }

    func testDotDotIsTheParentDirectory() throws {
        try w.populate(files: 6)
        try w.snapshot("one")
        try w.mount()
        let snap = try XCTUnwrap(w.rootNames().first { $0 != "latest" })
        for (dir, parent) in [("\(snap)/dir0/sub0", "\(snap)/dir0"), ("\(snap)/dir0", snap), (snap, "")] {
            let r = Command.sh("stat -c %i \(shellQuote("\(w.m)/\(dir)/..")) \(shellQuote("\(w.m)/\(parent)"))")
            let inos = r.out.split(separator: "\n")
            XCTAssertEqual(inos.count, 2, r.summary)
            XCTAssertEqual(inos.first, inos.last, "\(dir)/.. is \(parent.isEmpty ? "the root" : parent)")
            // What a listing says `..` is: `ls -ai` prints the numbers readdir gave.
            let ls = Command.sh("ls -ai \(shellQuote("\(w.m)/\(dir)")) | awk '$2 == \"..\" { print $1 }'")
            XCTAssertEqual(ls.out.trimmingCharacters(in: .whitespacesAndNewlines), String(inos.last ?? ""), ls.summary)
        }
    }

    func testForgetFreesTheNodesOfAWalk() throws {
        // One snapshot of 3,000 files.
        let pop = w.snapfs(["bench-populate", w.s, "--count", "1", "--files", "3000", "--changed", "3000", "--size", "16"], timeout: 300)
        XCTAssertTrue(pop.ok, pop.summary)
        try w.mount()
        let snap = try XCTUnwrap(w.rootNames().first { $0 != "latest" })
        let before = try nodes()

        // `%s` needs each entry's attributes, so `find` looks every one up (a bare `find` reads only listings).
        let walk = Command.sh("find \(shellQuote(w.m + "/" + snap)) -printf '%s\\n' | wc -l", timeout: 300)
        XCTAssertEqual(walk.out.trimmingCharacters(in: .whitespacesAndNewlines), "3001", walk.summary)
        let walked = try nodes()
        XCTAssertGreaterThanOrEqual(walked, before + 3000, "every file the walk looked up is held")
        let file = w.m + "/" + snap + "/" + (try XCTUnwrap(try FileManager.default.contentsOfDirectory(atPath: w.m + "/" + snap).sorted().first))
        let inoBefore = Command.sh("stat -c %i \(shellQuote(file))").out

        // Makes the kernel drop unused dentries and inodes, and so send FORGETs for them.
        var after = walked
        let deadline = Date().addingTimeInterval(60)
        repeat {
            XCTAssertTrue(Command.sh("echo 2 > /proc/sys/vm/drop_caches").ok)
            usleep(200_000)
            after = try nodes()
        } while after > before + 10 && Date() < deadline
        XCTAssertLessThanOrEqual(after, before + 10, "nodes after the kernel forgot: \(after), before the walk: \(before), after it: \(walked)")

        // A forgotten node looked up again has its number back.
        XCTAssertFalse(inoBefore.isEmpty)
        XCTAssertEqual(Command.sh("stat -c %i \(shellQuote(file))").out, inoBefore)
    }
}
