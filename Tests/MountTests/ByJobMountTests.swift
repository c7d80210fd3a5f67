import FlinkFixtures
import Foundation
import SnapStore
import XCTest

/// `by-job/` through a real mount of the first real Flink store (four jobs, two savepoints), driven with real
/// `ls`, `stat`, `readlink`, `tar`, `rsync`, `rm` and `mv`.
final class ByJobMountTests: MountTestCase {
    static let jobA = "c4f302458e6451f29e233030dfe8535c"
    static let jobD = "dd758ebfe2c5e0335122d7ddaf752ba0"
    static let jobs = ["4b913385afc25f46a0551aee1c033ec6", jobA, jobD, "e9201ce7019c330de1f0d46a06815e2d"]

    /// The fixture store in the workspace's store directory, with `withheld` moved aside; job A configured behind
    /// a JobManager that does not answer, so its newest snapshot is its recovery point.
    private func makeStore(withholding withheld: String) throws -> URL {
        try FileManager.default.removeItem(at: w.storeDir)
        try FileManager.default.moveItem(at: try FlinkFixtures.copy(store: 1), to: w.storeDir)
        let aside = w.root.appendingPathComponent("aside")
        try FileManager.default.moveItem(at: w.storeDir.appendingPathComponent(withheld), to: aside)
        let created = w.snapfs(["init", w.s, "--engine", "flink", "--rest", "http://127.0.0.1:9", "--job", Self.jobA,
                                "--path-map", "\(FlinkFixtures.writtenAt)=\(w.s)"])
        XCTAssertTrue(created.ok, created.summary)
        return aside
    }

    /// Waits (up to `seconds`) for `condition`; the test then asserts it, so a slow machine only waits longer.
    private func eventually(_ seconds: Double = 20, _ condition: () -> Bool) -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if condition() { return true }
            usleep(100_000)
        }
        return condition()
    }

    private func sh(_ script: String) -> Run { Command.sh(script) }

    func testByJobViewsThroughARealMount() throws {
        let withheld = "checkpoints/\(Self.jobD)/chk-17"
        let aside = try makeStore(withholding: withheld)
        try w.mount()
        let m = w.m

        // The flat root stays, with by-job/ beside it.
        XCTAssertTrue(w.rootNames().contains("c4f302-chk-13"))
        XCTAssertTrue(w.rootNames().contains("by-job"))
        let ls = sh("ls \(shellQuote(m + "/by-job"))")
        XCTAssertEqual(ls.out.split(separator: "\n").map(String.init), Self.jobs, ls.summary)
        let jobA = sh("ls \(shellQuote(m + "/by-job/" + Self.jobA))")
        XCTAssertEqual(Set(jobA.out.split(separator: "\n").map(String.init)),
                       ["chk-11", "chk-12", "chk-13", "latest", "savepoint-c4f302-a3c72ffbb47e", "savepoint-c4f302-ffe50290a9b7"], jobA.summary)
        XCTAssertEqual(sh("readlink \(shellQuote(m + "/by-job/" + Self.jobA + "/latest"))").out, "chk-13\n")
        XCTAssertEqual(sh("readlink \(shellQuote(m + "/by-job/" + Self.jobD + "/latest"))").out, "chk-16\n")

        // Same inode numbers (and everything else stat shows) for every snapshot, and every path below it.
        let store = try w.openStore()
        for s in try store.snapshots() {
            let job = try XCTUnwrap(s.job), shown = String(try XCTUnwrap(s.directory?.split(separator: "/").last))
            let flat = m + "/" + s.name, viewed = m + "/by-job/\(job)/\(shown)"
            let a = sh("stat -c %i \(shellQuote(flat))"), b = sh("stat -c %i \(shellQuote(viewed))")
            XCTAssertTrue(a.ok && b.ok, a.summary + b.summary)
            XCTAssertEqual(a.out, b.out, s.name)
            let listing = "find . -printf '%P %i %y %s %m %n %T@\\n' | sort"
            let ta = sh("cd \(shellQuote(flat)) && \(listing)"), tb = sh("cd \(shellQuote(viewed)) && \(listing)")
            XCTAssertTrue(ta.ok && tb.ok, ta.summary + tb.summary)
            XCTAssertGreaterThan(ta.out.split(separator: "\n").count, 2)
            XCTAssertEqual(ta.out, tb.out, s.name)
        }

        // tar through by-job is byte for byte the tar through the flat root; rsync copies the same tree.
        let tarA = sh("tar -C \(shellQuote(m + "/c4f302-chk-12")) --sort=name -cf - . | sha256sum")
        let tarB = sh("tar -C \(shellQuote(m + "/by-job/\(Self.jobA)/chk-12")) --sort=name -cf - . | sha256sum")
        XCTAssertTrue(tarA.ok && tarB.ok, tarA.summary + tarB.summary)
        XCTAssertEqual(tarA.out, tarB.out)
        let out = w.root.appendingPathComponent("copies").path
        let rsync = sh("""
            mkdir -p \(out)/flat \(out)/viewed && \
            rsync -aH \(shellQuote(m + "/c4f302-chk-12/")) \(out)/flat/ && \
            rsync -aH \(shellQuote(m + "/by-job/\(Self.jobA)/chk-12/")) \(out)/viewed/ && \
            diff -r \(out)/flat \(out)/viewed && find \(out)/viewed -type f | wc -l
            """)
        XCTAssertTrue(rsync.ok, rsync.summary)
        XCTAssertGreaterThan(Int(rsync.out.trimmingCharacters(in: .whitespacesAndNewlines)) ?? 0, 1, rsync.summary)

        // rm -rf of a job's recovery point through by-job: EBUSY, and nothing is gone.
        let busy = sh("rm -rf \(shellQuote(m + "/by-job/\(Self.jobA)/chk-13"))")
        XCTAssertFalse(busy.ok)
        XCTAssertTrue(busy.err.contains("Device or resource busy"), busy.summary)
        XCTAssertNoThrow(try store.snapshot(named: "c4f302-chk-13"))
        XCTAssertEqual(sh("cd \(shellQuote(m + "/by-job/\(Self.jobA)/chk-13")) && find . -type f | wc -l").out,
                       sh("cd \(shellQuote(m + "/c4f302-chk-13")) && find . -type f | wc -l").out)

        // rm -rf of another snapshot through by-job is its checked delete: gone from both views.
        let removed = sh("rm -rf \(shellQuote(m + "/by-job/\(Self.jobA)/chk-11"))")
        XCTAssertTrue(removed.ok, removed.summary)
        XCTAssertThrowsError(try store.snapshot(named: "c4f302-chk-11"))
        XCTAssertFalse(FileManager.default.fileExists(atPath: m + "/by-job/\(Self.jobA)/chk-11"))
        XCTAssertTrue(eventually { !w.rootNames().contains("c4f302-chk-11") }, "the flat name goes too")
        XCTAssertTrue(sh("stat \(shellQuote(m + "/c4f302-chk-11"))").err.contains("No such file"))

        // mv there is refused with EPERM; the snapshot keeps its name.
        let mv = sh("mv \(shellQuote(m + "/by-job/\(Self.jobA)/savepoint-c4f302-a3c72ffbb47e")) \(shellQuote(m + "/by-job/\(Self.jobA)/renamed"))")
        XCTAssertFalse(mv.ok)
        XCTAssertTrue(mv.err.contains("Operation not permitted"), mv.summary)
        XCTAssertNoThrow(try store.snapshot(named: "savepoint-c4f302-a3c72ffbb47e"))
        let events = try String(contentsOfFile: m + "/.snapfs/events", encoding: .utf8)
        XCTAssertTrue(events.contains("rename of by-job/"), events)

        // A delete at the root (kernel had the by-job name cached) takes the name out of by-job/ as well.
        XCTAssertTrue(sh("stat \(shellQuote(m + "/by-job/\(Self.jobA)/chk-12"))").ok)
        let flatRemoved = sh("rm -rf \(shellQuote(m + "/c4f302-chk-12"))")
        XCTAssertTrue(flatRemoved.ok, flatRemoved.summary)
        XCTAssertTrue(eventually { !sh("stat \(shellQuote(m + "/by-job/\(Self.jobA)/chk-12"))").ok })
        XCTAssertFalse(sh("ls \(shellQuote(m + "/by-job/" + Self.jobA))").out.split(separator: "\n").contains("chk-12"))

        // rm -rf of a whole job's directory deletes each of its snapshots through the checked delete; only
        // refusals (EBUSY, for a protected snapshot: with no JobManager answering, each job's newest checkpoint; and
        // EPERM for `latest`, which stays while the job has a snapshot) are reported, and the directory goes with its
        // last snapshot.
        let jobB = Self.jobs[0]
        let whole = sh("rm -rf \(shellQuote(m + "/by-job/" + jobB))")
        let complaints = whole.err.split(separator: "\n")
        XCTAssertTrue(complaints.allSatisfy {
            $0.contains("Device or resource busy") || ($0.contains("/latest'") && $0.contains("Operation not permitted"))
        }, whole.summary)
        XCTAssertTrue(complaints.contains { $0.contains("Device or resource busy") }, "the job's newest checkpoint is protected: \(whole.summary)")
        let left = try store.snapshots().filter { $0.job == jobB }
        XCTAssertEqual(whole.ok, left.isEmpty, whole.summary)
        XCTAssertTrue(eventually { FileManager.default.fileExists(atPath: m + "/by-job/" + jobB) == !left.isEmpty })

        // Flink completes chk-17: it appears in by-job/J/ and J's latest moves, though the kernel had both cached.
        XCTAssertFalse(sh("ls \(shellQuote(m + "/by-job/" + Self.jobD))").out.contains("chk-17"))
        try FileManager.default.moveItem(at: aside, to: w.storeDir.appendingPathComponent(withheld))
        XCTAssertTrue(eventually { sh("ls \(shellQuote(m + "/by-job/" + Self.jobD))").out.split(separator: "\n").contains("chk-17") },
                      sh("ls \(shellQuote(m + "/by-job/" + Self.jobD))").summary)
        XCTAssertTrue(eventually { sh("readlink \(shellQuote(m + "/by-job/" + Self.jobD + "/latest"))").out == "chk-17\n" })
        XCTAssertEqual(sh("stat -c %i \(shellQuote(m + "/by-job/\(Self.jobD)/latest/"))").out, sh("stat -c %i \(shellQuote(m + "/dd758e-chk-17"))").out)
    }

    /// The local engine has no jobs: no by-job/ in the mount.
    func testLocalStoreHasNoByJob() throws {
        try w.populate(files: 3)
        XCTAssertTrue(try w.snapshot("one").ok)
        try w.mount()
        XCTAssertTrue(w.rootNames().contains("one"))
        XCTAssertFalse(sh("ls -a \(shellQuote(w.m))").out.split(separator: "\n").contains("by-job"))
        XCTAssertTrue(sh("stat \(shellQuote(w.m + "/by-job"))").err.contains("No such file"))
    }
}
