import Foundation
import SnapStore
import Synchronization
import XCTest
#if canImport(Glibc)
import Glibc
#endif

/// Runs `a` and `b` at once, `b` after `delay` seconds, and returns both results.
func concurrently(delay: TimeInterval = 0, _ a: @escaping @Sendable () -> Run, _ b: @escaping @Sendable () -> Run) -> (Run, Run) {
    let other = Mutex<Run?>(nil)
    let done = DispatchSemaphore(value: 0)
    Thread {
        if delay > 0 { usleep(UInt32(delay * 1e6)) }
        let r = b()
        other.withLock { $0 = r }
        done.signal()
    }.start()
    let first = a()
    done.wait()
    return (first, other.withLock { $0! })
}

/// Two operations on the same snapshot at once, many times each: every outcome is one of the SPEC's (§4-§6) and
/// the store verifies clean afterwards. A vanished snapshot is ENOENT, a snapshot being written or the recovery
/// point is EBUSY, a taken name EEXIST (EINVAL for a trigger's label, which §6 counts as a bad label).
final class RaceMountTests: MountTestCase {
    let rounds = Int(ProcessInfo.processInfo.environment["SNAPFS_RACE_ROUNDS"] ?? "") ?? 20

    /// What `rm -rf` of a snapshot may print when someone else deleted it first: nothing, or ENOENT.
    private func rmOutcomeIsClean(_ r: Run) -> Bool {
        if r.timedOut { return false }
        let lines = r.err.split(separator: "\n")
        return lines.allSatisfy { $0.contains("No such file or directory") } && (r.ok || !lines.isEmpty)
    }

    func testCLIDeleteAgainstRmRfThroughTheMount() throws {
        try w.populate(files: 120)
        for k in 0..<rounds {
            try w.writeState("round.dat", bytes: 2000 + k, seed: UInt64(500 + k))
            XCTAssertTrue(w.snapfs(["trigger", w.s, "--format", "native-incremental", "--label", "r-\(k)"]).ok)
        }
        XCTAssertTrue(w.snapfs(["trigger", w.s, "--format", "native-full", "--label", "newest"]).ok)
        try w.mount()
        let m = w.m, s = w.s
        var cliDeleted = 0
        for k in 0..<rounds {
            let name = "r-\(k)"
            XCTAssertTrue(FileManager.default.fileExists(atPath: m + "/" + name + "/big.dat"), "the mount sees \(name)")
            // The command line starts in a few tens of milliseconds; rm starts at a different point of that each round.
            let (cli, rm) = concurrently(delay: Double(k % 8) * 0.012,
                                         { Command.run(snapfsBinary, ["delete", s, name]) },
                                         { Command.sh("rm -rf \(shellQuote(m + "/" + name))") })
            XCTAssertTrue(cli.status == 0 || cli.status == 3, "round \(k): snapfs delete: \(cli.summary)")
            if cli.status == 3 { XCTAssertTrue(cli.err.contains("no snapshot named"), cli.summary) }
            if cli.status == 0 { cliDeleted += 1 }
            XCTAssertTrue(rmOutcomeIsClean(rm), "round \(k): rm -rf: \(rm.summary)")
            XCTAssertThrowsError(try w.openStore().snapshot(named: name), "round \(k): \(name) is gone")
            waitUntil("round \(k): \(name) leaves the listing") { !w.rootNames().contains(name) }
        }
        print("cli-delete vs rm -rf: \(rounds) rounds, the command line deleted first in \(cliDeleted)")
        XCTAssertTrue(w.snapfs(["verify", w.s]).ok)
        w.unmount()
        w.verifyClean()
    }

    func testTriggerAgainstTrigger() throws {
        try w.populate(files: 40)
        try w.writeState("changing.dat", bytes: 4 << 20, seed: 1)
        try w.mount()
        let m = w.m
        var formats = ["native-incremental", "native-full", "canonical", "default"]
        for k in 0..<rounds {
            try w.writeState("changing.dat", bytes: 4 << 20, seed: UInt64(k + 2))
            let f1 = formats[k % 4], f2 = formats[(k + 1) % 4]
            // The same label: one takes it, the other is refused as a taken label and takes nothing.
            let (a, b) = concurrently({ Command.sh("echo same-\(k) > \(shellQuote(m + "/.snapfs/trigger/" + f1))") },
                                      { Command.sh("echo same-\(k) > \(shellQuote(m + "/.snapfs/trigger/" + f2))") })
            XCTAssertEqual([a, b].filter(\.ok).count, 1, "round \(k): exactly one takes the label: \(a.summary) / \(b.summary)")
            for r in [a, b] where !r.ok { XCTAssertTrue(r.err.contains("Invalid argument"), "round \(k): \(r.summary)") }
            XCTAssertTrue(w.rootNames().contains("same-\(k)"))
            // Different labels: both are taken.
            let (c, d) = concurrently({ Command.sh("echo one-\(k) > \(shellQuote(m + "/.snapfs/trigger/" + f1))") },
                                      { Command.sh("echo two-\(k) > \(shellQuote(m + "/.snapfs/trigger/" + f2))") })
            XCTAssertTrue(c.ok, "round \(k): \(c.summary)")
            XCTAssertTrue(d.ok, "round \(k): \(d.summary)")
            // mkdir of the same name twice: one snapshot, one EEXIST.
            let (e, g) = concurrently({ Command.sh("mkdir \(shellQuote(m + "/dir-\(k)"))") },
                                      { Command.sh("mkdir \(shellQuote(m + "/dir-\(k)"))") })
            XCTAssertEqual([e, g].filter(\.ok).count, 1, "round \(k): \(e.summary) / \(g.summary)")
            for r in [e, g] where !r.ok { XCTAssertTrue(r.err.contains("File exists"), "round \(k): \(r.summary)") }
            formats.swapAt(0, k % 4)
        }
        let names = try w.openStore().snapshots().map(\.name)
        XCTAssertEqual(names.count, rounds * 4)
        XCTAssertEqual(try w.openStore().snapshots(includingWriting: true).count, rounds * 4, "nothing left half-written")
        XCTAssertTrue(w.snapfs(["verify", w.s]).ok)
        w.unmount()
        w.verifyClean()
    }

    /// An incremental trigger while its base is deleted (the soak's failure), and a delete of the snapshot a trigger
    /// is writing.
    func testTriggerAgainstDelete() throws {
        try w.populate(files: 40)
        try w.mount()
        let m = w.m, s = w.s
        var baseGoneFirst = 0
        for k in 0..<rounds {
            // B is the base an incremental snapshot reuses; the canonical C after it is the recovery point, so B may go.
            try w.writeState("changing.dat", bytes: 8 << 20, seed: UInt64(100 + k))
            XCTAssertTrue(w.snapfs(["trigger", s, "--format", "native-full", "--label", "B-\(k)"]).ok)
            XCTAssertTrue(w.snapfs(["trigger", s, "--format", "canonical", "--label", "C-\(k)"]).ok)
            try w.writeState("changing.dat", bytes: 8 << 20, seed: UInt64(200 + k))
            let (trigger, delete) = concurrently(delay: Double(k % 5) * 0.02,
                                                 { Command.sh("echo X-\(k) > \(shellQuote(m + "/.snapfs/trigger/native-incremental"))") },
                                                 { Command.run(snapfsBinary, ["delete", s, "B-\(k)"]) })
            XCTAssertTrue(trigger.ok, "round \(k): the trigger never fails for a delete of its base: \(trigger.summary)")
            XCTAssertEqual(delete.status, 0, "round \(k): B is neither the recovery point nor being written: \(delete.summary)")
            if let store = try? w.openStore(), let events = try? store.events(),
               let gone = events.first(where: { $0.type == "delete" && $0.snapshot == "B-\(k)" }),
               let done = events.first(where: { $0.type == "snapshot" && $0.snapshot == "X-\(k)" }), gone.seq < done.seq {
                baseGoneFirst += 1
            }

            // The snapshot being written: ENOENT before its row exists, EBUSY while written and as the new recovery point.
            let (t2, d2) = concurrently(delay: Double(k % 5) * 0.02,
                                        { Command.sh("echo Y-\(k) > \(shellQuote(m + "/.snapfs/trigger/native-full"))") },
                                        { Command.run(snapfsBinary, ["delete", s, "Y-\(k)"]) })
            XCTAssertTrue(t2.ok, "round \(k): \(t2.summary)")
            XCTAssertTrue(d2.status == 3 || d2.status == 5, "round \(k): \(d2.summary)")
            let (t3, rm) = concurrently(delay: Double(k % 5) * 0.02,
                                        { Command.sh("echo Z-\(k) > \(shellQuote(m + "/.snapfs/trigger/native-incremental"))") },
                                        { Command.sh("rm -rf \(shellQuote(m + "/Z-\(k)"))") })
            XCTAssertTrue(t3.ok, "round \(k): \(t3.summary)")
            // Before the snapshot exists rm -rf has nothing to do; once it does, it is the recovery point. When it
            // appears between rm's lstat (no such file) and its unlink, the kernel answers EISDIR, as on any file system.
            XCTAssertTrue(rm.ok || rm.err.contains("Device or resource busy") || rm.err.contains("Is a directory"), "round \(k): \(rm.summary)")
            XCTAssertTrue(w.rootNames().contains("Z-\(k)"))
            XCTAssertTrue(FileManager.default.fileExists(atPath: m + "/Z-\(k)/changing.dat"), "round \(k): nothing of Z was lost")
        }
        print("trigger vs delete of its base: \(rounds) rounds, the base was deleted before the snapshot completed in \(baseGoneFirst)")
        for k in 0..<rounds {
            // X reused most of its files from B, which is gone; Y copied them all from the same state.
            XCTAssertEqual(treeDigest(m + "/X-\(k)"), treeDigest(m + "/Y-\(k)"), "round \(k)")
        }
        XCTAssertTrue(w.snapfs(["verify", w.s]).ok)
        w.unmount()
        w.verifyClean()
    }

    private func waitUntil(_ what: String, limit: TimeInterval = 2, _ condition: () -> Bool) {
        let end = Date().addingTimeInterval(limit)
        while !condition() {
            if Date() > end { XCTFail("\(what): not within \(limit) s"); return }
            usleep(20_000)
        }
    }
}

/// Space comes back when a snapshot is deleted, whoever deletes it: the daemon holds no descriptor of a removed object.
final class SpaceMountTests: MountTestCase {
    private func freeBytes() -> Int64 {
        var v = statvfs()
        guard statvfs(w.s, &v) == 0 else { return -1 }
        return Int64(v.f_bavail) * Int64(v.f_frsize)
    }

    /// Files under the store that `pid` holds open although they were deleted.
    private func deletedButOpen(_ pid: Int32) -> [String] {
        let dir = "/proc/\(pid)/fd"
        return ((try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []).compactMap { fd in
            guard let target = try? FileManager.default.destinationOfSymbolicLink(atPath: dir + "/" + fd) else { return nil }
            return target.hasPrefix(w.s + "/") && target.hasSuffix(" (deleted)") ? target : nil
        }
    }

    /// Deletes one snapshot with `delete` after reading its large file through the mount, and checks that `df`
    /// shows the space back within a second of the command returning.
    private func checkSpaceReturns(_ name: String, size: Int64, file: StaticString = #filePath, line: UInt = #line, _ delete: () -> Run) throws {
        let read = Command.sh("sha256sum \(shellQuote(w.m + "/" + name + "/large.bin"))")
        XCTAssertTrue(read.ok, read.summary, file: file, line: line)
        let pid = try XCTUnwrap(w.daemon?.processIdentifier)
        let before = freeBytes()
        let r = delete()
        XCTAssertTrue(r.ok, r.summary, file: file, line: line)
        let returned = Date()
        var gained: Int64 = 0, held: [String] = []
        while true {
            gained = freeBytes() - before
            held = deletedButOpen(pid)
            if gained >= size / 2 && held.isEmpty { break }
            if Date().timeIntervalSince(returned) > 1 { break }
            usleep(20_000)
        }
        let took = Date().timeIntervalSince(returned)
        print("space after deleting \(name): \(gained >> 20) MiB back in \(String(format: "%.3f", took)) s")
        XCTAssertEqual(held, [], "the daemon still holds deleted objects open", file: file, line: line)
        XCTAssertGreaterThanOrEqual(gained, size / 2, "df shows the space back within a second (\(gained) of \(size) bytes)", file: file, line: line)
    }

    func testDeletedSnapshotsSpaceComesBackWithinASecond() throws {
        let size: Int64 = 160 << 20
        try w.populate(files: 8)
        let large = w.state.appendingPathComponent("large.bin").path
        for name in ["by-rm", "by-cli"] {
            let r = Command.sh("head -c \(size) /dev/urandom > \(shellQuote(large))")
            XCTAssertTrue(r.ok, r.summary)
            XCTAssertTrue(w.snapfs(["trigger", w.s, "--format", "native-full", "--label", name]).ok)
        }
        try FileManager.default.removeItem(atPath: large)
        XCTAssertTrue(w.snapfs(["trigger", w.s, "--format", "native-full", "--label", "recovery-point"]).ok)
        try w.mount()

        // Deleted through the mount: the daemon lets go before rm returns.
        try checkSpaceReturns("by-rm", size: size) { Command.sh("rm -rf \(shellQuote(w.m + "/by-rm"))") }
        // Deleted by another process: the daemon's poller sees the catalog change and lets go.
        try checkSpaceReturns("by-cli", size: size) { w.snapfs(["delete", w.s, "by-cli"]) }
        w.unmount()
        w.verifyClean()
    }
}
