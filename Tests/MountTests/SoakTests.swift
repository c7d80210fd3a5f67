import Foundation
import SnapStore
import Synchronization
import XCTest
#if canImport(Glibc)
import Glibc
#endif

/// What the soak's threads report: unexpected failures, and counts of what they did.
final class SoakLog: Sendable {
    private let state = Mutex<(failures: [String], counts: [String: Int])>(([], [:]))
    func fail(_ s: String) { state.withLock { $0.failures.append(s) } }
    func count(_ what: String) { state.withLock { $0.counts[what, default: 0] += 1 } }
    var failures: [String] { state.withLock { $0.failures } }
    var counts: [String: Int] { state.withLock { $0.counts } }
}

/// Runs `body` on its own thread until `deadline`; `join` waits for every one of them.
final class Workers: Sendable {
    private let running = Mutex(0)
    func start(_ name: String, until deadline: Date, _ body: @escaping @Sendable (Int) -> Void) {
        running.withLock { $0 += 1 }
        let t = Thread { [self] in
            var i = 0
            while Date() < deadline { body(i); i += 1 }
            running.withLock { $0 -= 1 }
        }
        t.name = name
        t.start()
    }
    /// Waits for the workers; gives up after `limit` so a hang fails the test instead of blocking it.
    func join(limit: TimeInterval) -> Bool {
        let end = Date().addingTimeInterval(limit)
        while running.withLock({ $0 }) > 0 {
            if Date() > end { return false }
            usleep(100_000)
        }
        return true
    }
}

final class SoakMountTests: MountTestCase {
    /// Readers tar snapshots while others trigger, rename and delete and the scheduler takes and retires checkpoints.
    /// SNAPFS_SOAK_SECONDS sets how long (default 120).
    func testSoakReadersWhileSnapshotsComeAndGo() throws {
        let seconds = ProcessInfo.processInfo.environment["SNAPFS_SOAK_SECONDS"].flatMap(Double.init) ?? 120
        try w.populate(files: 40)
        try w.snapshot("stable-a", format: "native-full")
        try w.snapshot("stable-b", format: "canonical")
        try w.mount(["--checkpoint-interval", "1", "--retain", "3"])
        let m = w.m, statePath = w.state.path
        let log = SoakLog(), workers = Workers()
        let deadline = Date().addingTimeInterval(seconds)
        let wantA = treeDigest(w.expected.appendingPathComponent("stable-a").path)
        let wantB = treeDigest(w.expected.appendingPathComponent("stable-b").path)
        XCTAssertEqual(treeDigest(m + "/stable-a"), wantA)

        // The job keeps writing its state (atomically, as a log-structured store would).
        workers.start("soak-workload", until: deadline) { i in
            let name = "dir\(i % 3)/sub\(i % 2)/file-\(i % 40).dat"
            let r = Command.sh("head -c \(1000 + (i * 37) % 9000) /dev/urandom > \(shellQuote(statePath + "/" + name + ".tmp")) && mv \(shellQuote(statePath + "/" + name + ".tmp")) \(shellQuote(statePath + "/" + name))", timeout: 60)
            if !r.ok { log.fail("workload: \(r.summary)") }
            usleep(300_000)
        }
        for reader in 0..<2 {
            workers.start("soak-reader-\(reader)", until: deadline) { i in
                let target = (i + reader) % 2 == 0 ? "stable-a" : "stable-b"
                let r = Command.sh("tar -C \(shellQuote(m + "/" + target)) -cf - . | sha256sum", timeout: 120)
                if r.ok { log.count("tar") } else { log.fail("tar \(target): \(r.summary)") }
                // Plain `ls`: `ls -l` would race with deletes between readdir and stat, as on any file system.
                let ls = Command.sh("ls \(shellQuote(m)) >/dev/null && cat \(shellQuote(m + "/.snapfs/status")) >/dev/null", timeout: 60)
                if !ls.ok { log.fail("ls/status: \(ls.summary)") }
            }
        }
        // Triggers in every format; each returns once its snapshot is listed.
        workers.start("soak-trigger", until: deadline) { i in
            let formats = ["native-incremental", "native-full", "canonical", "default"]
            let label = "soak-\(i)"
            let r = Command.sh("echo \(label) > \(shellQuote(m + "/.snapfs/trigger/" + formats[i % 4])) && ls \(shellQuote(m))", timeout: 120)
            if r.ok {
                if r.out.split(separator: "\n").contains(Substring(label)) { log.count("trigger") } else { log.fail("\(label) not listed after close: \(r.out)") }
            } else if r.err.contains("Input/output error") && Command.sh("grep -l '\(label)' \(shellQuote(m))/.snapfs/requests/*.json | xargs grep -l 'attempts'").ok {
                // SPEC §7: a state file changing during every copy attempt fails the snapshot with a clear error.
                log.count("trigger-failed-state-changed")
            } else {
                log.fail("trigger \(label): \(r.summary)")
            }
            usleep(200_000)
        }
        // Moves and deletes of what the triggers made; the recovery point is refused with EBUSY, nothing else is.
        workers.start("soak-mutator", until: deadline) { i in
            let all = (try? FileManager.default.contentsOfDirectory(atPath: m)) ?? []
            let made = all.filter { $0.hasPrefix("soak-") }.sorted { Int($0.dropFirst(5)) ?? 0 < Int($1.dropFirst(5)) ?? 0 }
            if made.count >= 2 {
                let moved = "moved-\(i)"
                let mv = Command.sh("mv \(shellQuote(m + "/" + made[0])) \(shellQuote(m + "/" + moved))", timeout: 120)
                if mv.ok { log.count("mv") } else { log.fail("mv \(made[0]): \(mv.summary)") }
            }
            for victim in all.filter({ $0.hasPrefix("moved-") }) + (made.count >= 2 ? ["moved-\(i)"] : []) {
                let rm = Command.sh("rm -rf \(shellQuote(m + "/" + victim))", timeout: 120)
                if rm.ok { log.count("rm") } else if rm.err.contains("Device or resource busy") { log.count("rm-refused-recovery-point") } else { log.fail("rm \(victim): \(rm.summary)") }
            }
            usleep(100_000)
        }

        let joined = workers.join(limit: seconds + 300)
        XCTAssertTrue(joined, "workers hung")
        XCTAssertEqual(log.failures, [], "unexpected failures")
        let counts = log.counts
        print("soak \(seconds) s: \(counts.sorted { $0.key < $1.key })")
        XCTAssertGreaterThan(counts["tar"] ?? 0, 0)
        XCTAssertGreaterThan(counts["trigger"] ?? 0, 0)
        XCTAssertGreaterThan(counts["rm"] ?? 0, 0)
        XCTAssertEqual(treeDigest(m + "/stable-a"), wantA)
        XCTAssertEqual(treeDigest(m + "/stable-b"), wantB)
        let checkpoints = try w.openStore().snapshots().filter { $0.kind == .checkpoint }
        XCTAssertGreaterThan(checkpoints.count, 0, "the scheduler ran")
        XCTAssertLessThanOrEqual(checkpoints.count, 4, "retention ran")

        // A clean unmount: the daemon leaves by itself after fusermount3 -u.
        let daemon = try XCTUnwrap(w.daemon)
        let un = Command.run("/bin/fusermount3", ["-u", m], timeout: 60)
        XCTAssertTrue(un.ok, un.summary)
        let end = Date().addingTimeInterval(60)
        while daemon.isRunning && Date() < end { usleep(100_000) }
        XCTAssertFalse(daemon.isRunning, "daemon still running after unmount: \(w.log().suffix(2000))")
        w.unmount()
        w.verifyClean()
    }
}
