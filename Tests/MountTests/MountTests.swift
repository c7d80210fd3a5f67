import Foundation
import SnapStore
import Synchronization
import XCTest
#if canImport(Glibc)
import Glibc
#endif

/// The mount driven with the commands people use: rm, mv, tar, cp, rsync, restic, echo, touch, mkdir, stat, du.
final class DeleteAndMoveMountTests: MountTestCase {
    /// S (full) and a later incremental T sharing most of S's files, then a newer U as the recovery point.
    private func threeSnapshots() throws {
        try w.populate()
        try w.snapshot("S", format: "native-full")
        try w.writeState("dir1/sub1/file-4.dat", bytes: 5000, seed: 900)
        try w.writeState("added.dat", bytes: 7000, seed: 901)
        try FileManager.default.removeItem(at: w.state.appendingPathComponent("dir2/sub0/file-2.dat"))
        try w.snapshot("T")
        try w.writeState("newest.dat", bytes: 100, seed: 902)
        try w.snapshot("U")
    }

    func testRmRfOfASnapshotDeletesItAndKeepsWhatOthersNeed() throws {
        try threeSnapshots()
        let store = try w.openStore()
        let sID = try store.snapshot(named: "S").id
        let onlyS = try store.entries(of: sID).filter { $0.type == .file && $0.links == 1 }.compactMap(\.objectPath)
        let shared = try store.entries(of: sID).filter { $0.type == .file && $0.links > 1 }.compactMap(\.objectPath)
        XCTAssertFalse(onlyS.isEmpty)
        XCTAssertGreaterThan(shared.count, onlyS.count, "T shares most of S's files")
        let tID = try store.snapshot(named: "T").id
        let sharedInT = try XCTUnwrap(store.entries(of: tID).first { $0.type == .file && shared.contains($0.objectPath ?? "") })
        try w.mount()
        let statLinks = "stat -c %h \(shellQuote(w.m + "/T/" + sharedInT.path))"
        XCTAssertEqual(Command.sh(statLinks).out.trimmingCharacters(in: .whitespacesAndNewlines), String(sharedInT.links))

        let rm = Command.sh("rm -rf \(shellQuote(w.m + "/S"))")
        XCTAssertTrue(rm.ok, rm.summary)
        XCTAssertFalse(w.rootNames().contains("S"))
        // The kernel may cache attributes for an hour, but a link count that moved is invalidated at once.
        var links = ""
        for _ in 0..<30 {
            links = Command.sh(statLinks).out.trimmingCharacters(in: .whitespacesAndNewlines)
            if links == String(sharedInT.links - 1) { break }
            usleep(100_000)
        }
        XCTAssertEqual(links, String(sharedInT.links - 1), "st_nlink of a file T shared with S after S is gone")
        XCTAssertThrowsError(try store.snapshot(named: "S"))
        for p in onlyS { XCTAssertFalse(FileManager.default.fileExists(atPath: store.url(ofObjectPath: p).path), "left behind: \(p)") }
        for p in shared { XCTAssertTrue(FileManager.default.fileExists(atPath: store.url(ofObjectPath: p).path), "lost: \(p)") }

        let out = w.root.appendingPathComponent("out-T").path
        try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
        let tar = Command.sh("tar -C \(shellQuote(w.m + "/T")) -cf - . | tar -C \(shellQuote(out)) -xf -")
        XCTAssertTrue(tar.ok, tar.summary)
        XCTAssertEqual(treeDigest(out), treeDigest(w.expected.appendingPathComponent("T").path))
        w.unmount()
        w.verifyClean()
    }

    func testRecoveryPointRefusesRmAndRmdirAndNothingChanges() throws {
        try threeSnapshots()
        try w.mount()
        let before = treeDigest(w.m + "/U")
        let objectsBefore = try w.openStore().objects()
        let rm = Command.sh("rm -rf \(shellQuote(w.m + "/U"))")
        XCTAssertFalse(rm.ok)
        XCTAssertTrue(rm.err.contains("Device or resource busy"), rm.summary)
        let rmdir = Command.sh("rmdir \(shellQuote(w.m + "/U"))")
        XCTAssertFalse(rmdir.ok)
        XCTAssertTrue(rmdir.err.contains("Device or resource busy"), rmdir.summary)
        let viaLatest = Command.sh("rm -rf \(shellQuote(w.m + "/latest/"))")
        XCTAssertFalse(viaLatest.ok, viaLatest.summary)
        XCTAssertTrue(w.rootNames().contains("U"))
        XCTAssertEqual(treeDigest(w.m + "/U"), before)
        XCTAssertEqual(treeDigest(w.m + "/U"), treeDigest(w.expected.appendingPathComponent("U").path))
        XCTAssertEqual(try w.openStore().objects(), objectsBefore)
        let events = (try? String(contentsOfFile: w.m + "/.snapfs/events", encoding: .utf8)) ?? ""
        XCTAssertTrue(events.contains("recovery point"), events)
        let report = (try? String(contentsOfFile: w.m + "/.snapfs/snapshots/U.json", encoding: .utf8)) ?? ""
        XCTAssertTrue(report.contains("\"deletable\" : false"), report)
    }

    func testRmOfOneFileLosesNothingAndTheFileComesBack() throws {
        try threeSnapshots()
        try w.mount(["--stage-window", "2"])
        let file = w.m + "/S/dir0/sub0/file-0.dat"
        let digest = Store.sha256(ofFile: file)
        let objectsBefore = try w.openStore().objects()
        let rm = Command.sh("rm \(shellQuote(file))")
        XCTAssertTrue(rm.ok, rm.summary)
        XCTAssertFalse(FileManager.default.fileExists(atPath: file))
        XCTAssertEqual(try w.openStore().objects(), objectsBefore, "nothing removed from the store")
        let listed = Command.sh("ls \(shellQuote(w.m + "/S/dir0/sub0"))")
        XCTAssertFalse(listed.out.split(separator: "\n").contains("file-0.dat"), "hidden while staged: \(listed.out)")
        // Wait for the window to pass; the check is what comes back, not how fast.
        let deadline = Date().addingTimeInterval(60)
        while !FileManager.default.fileExists(atPath: file) && Date() < deadline { usleep(200_000) }
        XCTAssertTrue(FileManager.default.fileExists(atPath: file))
        // The kernel keeps listings of snapshot directories; the poller makes it drop this one.
        var relisted = ""
        for _ in 0..<20 {
            relisted = Command.sh("ls \(shellQuote(w.m + "/S/dir0/sub0"))").out
            if relisted.split(separator: "\n").contains("file-0.dat") { break }
            usleep(100_000)
        }
        XCTAssertTrue(relisted.split(separator: "\n").contains("file-0.dat"), "listed again after the window: \(relisted)")
        XCTAssertEqual(Store.sha256(ofFile: file), digest)
        XCTAssertEqual(treeDigest(w.m + "/S"), treeDigest(w.expected.appendingPathComponent("S").path))
    }

    func testMoveInsideTheMount() throws {
        try threeSnapshots()
        try w.mount()
        let inode = Command.sh("stat -c %i \(shellQuote(w.m + "/S"))").out
        let mv = Command.sh("mv \(shellQuote(w.m + "/S")) \(shellQuote(w.m + "/R"))")
        XCTAssertTrue(mv.ok, mv.summary)
        XCTAssertTrue(w.rootNames().contains("R"))
        XCTAssertFalse(w.rootNames().contains("S"))
        XCTAssertEqual(Command.sh("stat -c %i \(shellQuote(w.m + "/R"))").out, inode)
        XCTAssertEqual(try w.openStore().snapshots().map(\.name), ["R", "T", "U"])

        let exists = Command.sh("mv -T \(shellQuote(w.m + "/R")) \(shellQuote(w.m + "/T"))")
        XCTAssertFalse(exists.ok)
        XCTAssertTrue(exists.err.contains("File exists"), exists.summary)
        let into = Command.sh("mv \(shellQuote(w.m + "/R")) \(shellQuote(w.m + "/T"))")
        XCTAssertFalse(into.ok, into.summary)
        let bad = Command.sh("mv \(shellQuote(w.m + "/R")) \(shellQuote(w.m + "/bad name"))")
        XCTAssertFalse(bad.ok, bad.summary)
        XCTAssertEqual(w.errnoOf("os.rename('\(w.m)/R', '\(w.m)/bad name')"), "EINVAL")
        XCTAssertEqual(w.errnoOf("os.rename('\(w.m)/R', '\(w.m)/T')"), "EEXIST")
        XCTAssertEqual(try w.openStore().snapshots().map(\.name), ["R", "T", "U"])
        XCTAssertEqual(treeDigest(w.m + "/T"), treeDigest(w.expected.appendingPathComponent("T").path))
    }

    func testMoveOutCopiesAndDeletesButKeepsTheRecoveryPoint() throws {
        try threeSnapshots()
        try w.mount()
        let out = w.root.appendingPathComponent("out").path
        try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
        let mv = Command.sh("mv \(shellQuote(w.m + "/S")) \(shellQuote(out))/")
        XCTAssertTrue(mv.ok, mv.summary)
        XCTAssertEqual(treeDigest(out + "/S"), treeDigest(w.expected.appendingPathComponent("S").path))
        XCTAssertFalse(w.rootNames().contains("S"))
        XCTAssertThrowsError(try w.openStore().snapshot(named: "S"))

        let mvRP = Command.sh("mv \(shellQuote(w.m + "/U")) \(shellQuote(out))/")
        XCTAssertFalse(mvRP.ok, "mv must report the refused delete")
        XCTAssertTrue(mvRP.err.contains("Device or resource busy"), mvRP.summary)
        XCTAssertEqual(treeDigest(out + "/U"), treeDigest(w.expected.appendingPathComponent("U").path), "the copy is complete")
        XCTAssertTrue(w.rootNames().contains("U"))
        XCTAssertEqual(treeDigest(w.m + "/U"), treeDigest(w.expected.appendingPathComponent("U").path))
        w.unmount()
        w.verifyClean()
    }

    func testControlEntriesAndSnapshotsAreProtected() throws {
        try threeSnapshots()
        try w.mount()
        let touch = Command.sh("touch \(shellQuote(w.m + "/T/x"))")
        XCTAssertFalse(touch.ok)
        XCTAssertTrue(touch.err.contains("Read-only file system"), touch.summary)
        let overwrite = Command.sh("echo x > \(shellQuote(w.m + "/T/empty"))")
        XCTAssertTrue(overwrite.err.contains("Read-only file system"), overwrite.summary)
        let chmod = Command.sh("chmod 777 \(shellQuote(w.m + "/T/big.dat"))")
        XCTAssertTrue(chmod.err.contains("Read-only file system"), chmod.summary)
        let mvInside = Command.sh("mv \(shellQuote(w.m + "/T/big.dat")) \(shellQuote(w.m + "/T/dir0/"))")
        XCTAssertTrue(mvInside.err.contains("Read-only file system"), mvInside.summary)
        let rmLatest = Command.sh("rm \(shellQuote(w.m + "/latest"))")
        XCTAssertTrue(rmLatest.err.contains("Operation not permitted"), rmLatest.summary)
        let mvControl = Command.sh("mv \(shellQuote(w.m + "/.snapfs")) \(shellQuote(w.m + "/c"))")
        XCTAssertTrue(mvControl.err.contains("Operation not permitted"), mvControl.summary)
        let rmEvents = Command.sh("rm -f \(shellQuote(w.m + "/.snapfs/events"))")
        XCTAssertTrue(rmEvents.err.contains("Operation not permitted"), rmEvents.summary)
        XCTAssertEqual(Command.sh("readlink \(shellQuote(w.m + "/latest"))").out, "U\n")
        XCTAssertEqual(treeDigest(w.m + "/T"), treeDigest(w.expected.appendingPathComponent("T").path))
    }
}

final class TriggerMountTests: MountTestCase {
    func testTriggersReturnWhenTheSnapshotIsListed() throws {
        try w.populate(files: 6)
        try w.mount()
        let t = w.m + "/.snapfs/trigger"
        let echo = Command.sh("echo pre-upgrade > \(shellQuote(t + "/canonical")) && ls \(shellQuote(w.m))")
        XCTAssertTrue(echo.ok, echo.summary)
        XCTAssertTrue(echo.out.split(separator: "\n").contains("pre-upgrade"), echo.summary)
        XCTAssertEqual(treeDigest(w.m + "/pre-upgrade"), treeDigest(w.state.path))

        let touch = Command.sh("touch \(shellQuote(t + "/native-incremental")) && ls \(shellQuote(w.m))")
        XCTAssertTrue(touch.ok, touch.summary)
        XCTAssertEqual(try w.openStore().snapshots().count, 2, "touch takes exactly one snapshot")
        XCTAssertEqual(touch.out.split(separator: "\n").count, 3, touch.out)

        let mkdir = Command.sh("mkdir \(shellQuote(w.m + "/by-mkdir")) && ls \(shellQuote(w.m))")
        XCTAssertTrue(mkdir.ok, mkdir.summary)
        XCTAssertTrue(mkdir.out.split(separator: "\n").contains("by-mkdir"), mkdir.summary)

        let plain = Command.sh("echo > \(shellQuote(t + "/default"))")
        XCTAssertTrue(plain.ok, plain.summary)
        XCTAssertEqual(try w.openStore().snapshots().count, 4)

        let bad = Command.sh("echo 'bad label' > \(shellQuote(t + "/default"))")
        XCTAssertFalse(bad.ok)
        XCTAssertTrue(bad.err.contains("Invalid argument"), bad.summary)
        let dup = Command.sh("echo pre-upgrade > \(shellQuote(t + "/native-full"))")
        XCTAssertFalse(dup.ok, dup.summary)
        let unknown = Command.sh("echo x > \(shellQuote(t + "/full"))")
        XCTAssertTrue(unknown.err.contains("No such file or directory"), unknown.summary)
        let read = Command.sh("cat \(shellQuote(t + "/canonical"))")
        XCTAssertTrue(read.ok, read.summary)
        XCTAssertEqual(try w.openStore().snapshots().count, 4, "refused and read-only requests took nothing")

        // A snapshot that fails reaches the script: from the write for `echo`, from the time update for `touch`
        // (the mount skips opens and closes, so each is the request itself); nothing is listed, and the request
        // says why.
        let away = w.state.path + ".away"
        try FileManager.default.moveItem(atPath: w.state.path, toPath: away)
        let failedEcho = Command.sh("echo doomed > \(shellQuote(t + "/native-full")) && echo reached")
        XCTAssertFalse(failedEcho.ok, failedEcho.summary)
        XCTAssertTrue(failedEcho.err.contains("Input/output error"), failedEcho.summary)
        XCTAssertFalse(failedEcho.out.contains("reached"), "the script stops at the failed trigger")
        let failedTouch = Command.sh("touch \(shellQuote(t + "/native-incremental"))")
        XCTAssertFalse(failedTouch.ok, failedTouch.summary)
        XCTAssertTrue(failedTouch.err.contains("Input/output error"), failedTouch.summary)
        try FileManager.default.moveItem(atPath: away, toPath: w.state.path)
        XCTAssertEqual(try w.openStore().snapshots().count, 4, "a failed trigger lists nothing")
        let failedRequest = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: w.m + "/.snapfs/requests/5.json"))) as? [String: Any]
        XCTAssertEqual(failedRequest?["state"] as? String, "failed")
        XCTAssertTrue((failedRequest?["error"] as? String ?? "").contains(w.state.lastPathComponent), "\(failedRequest ?? [:])")

        let requests = try FileManager.default.contentsOfDirectory(atPath: w.m + "/.snapfs/requests")
        XCTAssertEqual(requests.count, 6)
        let r1 = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: w.m + "/.snapfs/requests/1.json"))) as? [String: Any]
        XCTAssertEqual(r1?["state"] as? String, "complete")
        XCTAssertEqual(r1?["snapshot"] as? String, "pre-upgrade")
        let formats = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: w.m + "/.snapfs/formats"))) as? [Any]
        XCTAssertEqual(formats?.count, 3)

        // Appending works like writing (every open sees an empty trigger), a label without a newline is the whole
        // write, and a label written in pieces is refused rather than guessed.
        let before = try w.openStore().snapshots().count
        let statusBefore = Command.sh("cat \(shellQuote(w.m + "/.snapfs/status"))")
        for label in ["app-1", "app-2"] {
            let r = Command.sh("echo \(label) >> \(shellQuote(t + "/native-full")) && ls \(shellQuote(w.m))")
            XCTAssertTrue(r.ok && r.out.split(separator: "\n").contains(Substring(label)), r.summary)
        }
        let printf = Command.sh("printf no-newline > \(shellQuote(t + "/native-full")) && ls \(shellQuote(w.m))")
        XCTAssertTrue(printf.ok && printf.out.contains("no-newline"), printf.summary)
        let split = Command.sh("python3 -c \"import os; fd = os.open('\(t)/native-full', os.O_WRONLY); os.write(fd, b'sp'); os.write(fd, b'lit')\"")
        XCTAssertFalse(split.ok, "a label in pieces: \(split.summary)")
        XCTAssertTrue(split.err.contains("Invalid argument"), split.summary)
        XCTAssertEqual(try w.openStore().snapshots().map(\.name).suffix(4), ["app-1", "app-2", "no-newline", "sp"])
        XCTAssertEqual(try w.openStore().snapshots().count, before + 4)
        let statusAfter = Command.sh("cat \(shellQuote(w.m + "/.snapfs/status"))")
        XCTAssertNotEqual(statusBefore.out, statusAfter.out, "a generated file is read fresh after it changed")
        w.unmount()
        w.verifyClean()
    }

    func testChangesFromTheCommandLineShowInTheMount() throws {
        try w.populate(files: 4)
        try w.snapshot("one", format: "native-full")
        try w.snapshot("two")
        try w.mount()
        XCTAssertEqual(w.rootNames(), ["latest", "one", "two"])
        let file = try XCTUnwrap(FileManager.default.subpaths(atPath: w.m + "/two")?.sorted().first { p in
            var isDir: ObjCBool = false
            return FileManager.default.fileExists(atPath: w.m + "/two/" + p, isDirectory: &isDir) && !isDir.boolValue
        })
        let statLinks = "stat -c %h \(shellQuote(w.m + "/two/" + file))"
        XCTAssertEqual(Command.sh(statLinks).out, "2\n", "one object held by one and two")
        XCTAssertTrue(w.snapfs(["move", w.s, "one", "uno"]).ok)
        XCTAssertTrue(w.snapfs(["trigger", w.s, "--label", "three"]).ok)
        let deadline = Date().addingTimeInterval(20)
        while w.rootNames() != ["latest", "three", "two", "uno"] && Date() < deadline { usleep(100_000) }
        XCTAssertEqual(w.rootNames(), ["latest", "three", "two", "uno"])
        XCTAssertEqual(Command.sh("readlink \(shellQuote(w.m + "/latest"))").out, "three\n")
        XCTAssertFalse(FileManager.default.fileExists(atPath: w.m + "/one"))

        // Attributes are cached for an hour, but a link count the command line moved is invalidated within the
        // poller's quarter second.
        func links(becoming want: String) -> String {
            var got = ""
            for _ in 0..<30 {
                got = Command.sh(statLinks).out.trimmingCharacters(in: .whitespacesAndNewlines)
                if got == want { break }
                usleep(100_000)
            }
            return got
        }
        XCTAssertEqual(links(becoming: "3"), "3", "three shares the object too")
        XCTAssertTrue(w.snapfs(["delete", w.s, "uno"]).ok)
        XCTAssertEqual(links(becoming: "2"), "2", "st_nlink after the command line deleted one of the three")
    }
}

final class ReadMountTests: MountTestCase {
    private func twoSnapshots() throws {
        try w.populate()
        try w.snapshot("S", format: "native-full")
        try w.writeState("dir0/sub1/file-3.dat", bytes: 4321, seed: 555)
        try w.snapshot("T")
    }

    func testBackupToolsRestoreIdenticalTrees() throws {
        try twoSnapshots()
        try w.mount()
        let want = treeDigest(w.expected.appendingPathComponent("T").path)
        let src = w.m + "/T"
        let out = w.root.appendingPathComponent("restore").path
        let cp = Command.sh("mkdir -p \(shellQuote(out)) && cp -a \(shellQuote(src)) \(shellQuote(out + "/cp"))")
        XCTAssertTrue(cp.ok, cp.summary)
        XCTAssertEqual(treeDigest(out + "/cp"), want)
        let rsync = Command.sh("rsync -aH \(shellQuote(src + "/")) \(shellQuote(out + "/rsync/"))")
        XCTAssertTrue(rsync.ok, rsync.summary)
        XCTAssertEqual(treeDigest(out + "/rsync"), want)
        let tar = Command.sh("mkdir -p \(shellQuote(out + "/tar")) && tar -C \(shellQuote(src)) -cf \(shellQuote(out + "/t.tar")) . && tar -C \(shellQuote(out + "/tar")) -xf \(shellQuote(out + "/t.tar"))")
        XCTAssertTrue(tar.ok, tar.summary)
        XCTAssertEqual(treeDigest(out + "/tar"), want)
        let repo = out + "/restic-repo"
        let restic = Command.sh("""
            export RESTIC_PASSWORD=snapfs-test RESTIC_CACHE_DIR=\(shellQuote(out + "/restic-cache"))
            restic -q -r \(shellQuote(repo)) init && \
            cd \(shellQuote(src)) && restic -q -r \(shellQuote(repo)) backup . && \
            restic -q -r \(shellQuote(repo)) restore latest --target \(shellQuote(out + "/restic"))
            """, timeout: 300)
        XCTAssertTrue(restic.ok, restic.summary)
        XCTAssertEqual(treeDigest(out + "/restic"), want)
    }

    /// Cold sequential reads come in 512 KiB requests instead of the kernel's 128 KiB (a quarter of the round trips),
    /// which the daemon arranges through the mount's read-ahead window once the kernel is initialised.
    func testTheMountReadsAheadInLargeRequests() throws {
        try twoSnapshots()
        try w.mount()
        let readAhead = "cat /sys/class/bdi/$(mountpoint -d \(shellQuote(w.m)))/read_ahead_kb"
        var got = ""
        for _ in 0..<30 {
            got = Command.sh(readAhead).out.trimmingCharacters(in: .whitespacesAndNewlines)
            if got == "512" { break }
            usleep(100_000)
        }
        XCTAssertEqual(got, "512", "read_ahead_kb of the mount")
        _ = Command.sh("sync; echo 3 > /proc/sys/vm/drop_caches")
        let big = "big.dat"
        let cmp = Command.sh("dd if=\(shellQuote(w.m + "/T/" + big)) bs=1M status=none | cmp - \(shellQuote(w.expected.appendingPathComponent("T/" + big).path))")
        XCTAssertTrue(cmp.ok, "a cold read in large requests returns the same bytes: " + cmp.summary)
    }

    /// Kernels before 4.19 cannot skip OPEN and RELEASE. `--send-opens` makes this kernel send them too, so the path
    /// such kernels take (every open checked by the daemon) is driven for real: the same bytes, the same refusals,
    /// triggers that still work, and a write refused at open instead of at the first write.
    func testWithOpensSentTheMountBehavesTheSame() throws {
        try twoSnapshots()
        try w.mount(["--send-opens"])
        let file = w.m + "/T/dir0/sub0/file-0.dat"
        XCTAssertEqual(w.errnoOf("os.open('\(file)', os.O_WRONLY)"), "EROFS", "a snapshot file opened for writing")
        XCTAssertEqual(w.errnoOf("os.close(os.open('\(file)', os.O_RDONLY))"), "OK")
        for label in ["S", "T"] {
            XCTAssertEqual(treeDigest(w.m + "/" + label), treeDigest(w.expected.appendingPathComponent(label).path), label)
        }
        let tar = Command.sh("tar -C \(shellQuote(w.m + "/T")) -cf - . | tar -tf - | wc -l")
        XCTAssertTrue(tar.ok, tar.summary)
        XCTAssertEqual(Int(tar.out.trimmingCharacters(in: .whitespacesAndNewlines)), treeDigest(w.m + "/T").count + 1, "tar lists . and every entry")
        let trigger = Command.sh("echo with-opens > \(shellQuote(w.m + "/.snapfs/trigger/native-full"))")
        XCTAssertTrue(trigger.ok, trigger.summary)
        XCTAssertTrue(w.rootNames().contains("with-opens"), "listed once the trigger returned: \(w.rootNames())")
        let rm = Command.sh("rm -rf \(shellQuote(w.m + "/latest/"))")
        XCTAssertTrue(rm.err.contains("Device or resource busy"), rm.summary)
        XCTAssertTrue(w.rootNames().contains("with-opens"))
    }

    /// `find -links`, `ls -l` and backup tools see each directory's link count as on the state: 2 + its subdirectories.
    func testDirectoryLinkCountsMatchTheState() throws {
        try twoSnapshots()
        try w.mount()
        let listing = { (dir: String) in Command.sh("cd \(shellQuote(dir)) && find . -type d -printf '%p %n\\n' | sort") }
        let mine = listing(w.m + "/T"), want = listing(w.expected.appendingPathComponent("T").path)
        XCTAssertTrue(mine.ok, mine.summary)
        XCTAssertTrue(want.out.contains("./dir0 4"), want.out)
        XCTAssertEqual(mine.out, want.out)
    }

    func testDuCountsSharedObjectsOnce() throws {
        try twoSnapshots()
        try w.mount()
        let store = try w.openStore()
        var unique: [String: Int64] = [:]
        var symlinkBytes: Int64 = 0
        var naive: Int64 = 0
        for s in try store.snapshots() {
            for e in try store.entries(of: s.id) {
                if e.type == .file { unique[e.objectPath!] = e.size; naive += e.size }
                if e.type == .symlink { symlinkBytes += Int64(e.symlinkTarget!.utf8.count) }
            }
        }
        let expected = unique.values.reduce(0, +) + symlinkBytes
        let du = Command.sh("du -sbc \(shellQuote(w.m + "/S")) \(shellQuote(w.m + "/T")) | tail -1")
        XCTAssertTrue(du.ok, du.summary)
        XCTAssertEqual(Int64(du.out.split(separator: "\t").first ?? ""), expected, du.out)
        XCTAssertLessThan(expected, naive, "the snapshots do share objects")
        let nlink = Command.sh("stat -c '%i %h' \(shellQuote(w.m + "/S/big.dat")) \(shellQuote(w.m + "/T/big.dat"))")
        let lines = nlink.out.split(separator: "\n")
        XCTAssertEqual(lines.count, 2)
        XCTAssertEqual(lines.first, lines.last, "one inode, shown twice")
        XCTAssertTrue(lines.first?.hasSuffix(" 2") ?? false, nlink.out)
    }

    func testInodesAreStableAcrossRemountsAndXattrsShowMetadata() throws {
        try twoSnapshots()
        try w.mount()
        let paths = ["S", "T", "T/dir0", "T/big.dat", "S/dir1/sub1/file-1.dat", "T/link", "latest", ".snapfs"].map { shellQuote(w.m + "/" + $0) }
        let first = Command.sh("stat -c '%i %n' " + paths.joined(separator: " "))
        XCTAssertTrue(first.ok, first.summary)
        // Asked for by name: they are not listed, so copies of the snapshot do not carry them.
        let T = shellQuote(w.m + "/T")
        let fattr = Command.sh(["format", "references", "deletable"].map { "getfattr -n user.snapfs.\($0) \(T)" }.joined(separator: " && "))
        XCTAssertTrue(fattr.ok, fattr.summary)
        XCTAssertTrue(fattr.out.contains("user.snapfs.format=\"native-incremental\""), fattr.out)
        XCTAssertTrue(fattr.out.contains("user.snapfs.references=\"S\""), fattr.out)
        XCTAssertTrue(fattr.out.contains("user.snapfs.deletable=\"no: recovery point"), fattr.out)
        XCTAssertEqual(Command.sh("getfattr -d -m - \(T)").out, "", "nothing of SnapFS is listed")
        w.unmount()
        XCTAssertFalse(w.isMounted())
        try w.mount()
        let second = Command.sh("stat -c '%i %n' " + paths.joined(separator: " "))
        XCTAssertEqual(first.out, second.out)
        let statfs = Command.sh("stat -f -c %T \(shellQuote(w.m))")
        XCTAssertTrue(statfs.ok, statfs.summary)
    }
}

final class DaemonMountTests: MountTestCase {
    func testSecondDaemonBusyAndStaleMountpointsAreRefusedClearly() throws {
        try w.populate(files: 3)
        try w.snapshot("S", format: "native-full")
        try w.mount()
        let other = w.root.appendingPathComponent("other").path
        try FileManager.default.createDirectory(atPath: other, withIntermediateDirectories: true)
        let second = w.snapfs(["mount", w.s, other], timeout: 30)
        XCTAssertEqual(second.status, 5, second.summary)
        XCTAssertTrue(second.err.contains("another snapfs daemon"), second.summary)

        let store2 = w.root.appendingPathComponent("store2").path
        XCTAssertTrue(w.snapfs(["init", store2, "--state", w.state.path]).ok)
        let busy = w.snapfs(["mount", store2, w.m], timeout: 30)
        XCTAssertEqual(busy.status, 5, busy.summary)
        XCTAssertTrue(busy.err.contains("is already mounted"), busy.summary)
        try Data("x".utf8).write(to: URL(fileURLWithPath: other + "/file"))
        let nonEmpty = w.snapfs(["mount", store2, other], timeout: 30)
        XCTAssertTrue(nonEmpty.err.contains("not empty"), nonEmpty.summary)

        w.killDaemon()
        let stale = Command.sh("ls \(shellQuote(w.m))")
        XCTAssertTrue(stale.err.contains("Transport endpoint is not connected"), stale.summary)
        let refused = w.snapfs(["mount", w.s, w.m], timeout: 30)
        XCTAssertEqual(refused.status, 5, refused.summary)
        XCTAssertTrue(refused.err.contains("stale mount"), refused.summary)
        try w.mount(["--clear-stale"])
        XCTAssertEqual(w.rootNames(), ["S", "latest"])
    }

    /// The fstab helper as mount(8) calls it: returns once mounted, passes -o options through, refuses a second mount.
    func testMountHelperForFstab() throws {
        try w.populate(files: 3)
        try w.snapshot("S", format: "native-full")
        let helper = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("Mount/mount.fuse.snapfs").path
        let env = "SNAPFS_BIN=\(shellQuote(snapfsBinary)) SNAPFS_LOG_FILE=\(shellQuote(w.root.path + "/helper.log"))"
        let first = Command.sh("\(env) \(shellQuote(helper)) \(shellQuote(w.s)) \(shellQuote(w.m)) -o rw,nofail,stage-window=5,retain=2", timeout: 90)
        XCTAssertTrue(first.ok, first.summary)
        XCTAssertTrue(w.isMounted())
        XCTAssertEqual(w.rootNames(), ["S", "latest"])
        let status = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: w.m + "/.snapfs/status"))) as? [String: Any]
        XCTAssertEqual(status?["stageWindowSeconds"] as? Double, 5)
        let second = Command.sh("\(env) \(shellQuote(helper)) \(shellQuote(w.s)) \(shellQuote(w.m))", timeout: 90)
        XCTAssertEqual(second.status, 32, second.summary)
        let bad = Command.sh("\(env) \(shellQuote(helper)) \(shellQuote(w.s)) \(shellQuote(w.root.path + "/nowhere"))", timeout: 90)
        XCTAssertFalse(bad.ok, bad.summary)
        let un = Command.run("/bin/umount", [w.m], timeout: 60)
        XCTAssertTrue(un.ok, un.summary)
        let end = Date().addingTimeInterval(30)
        while w.isMounted() && Date() < end { usleep(50_000) }
        XCTAssertFalse(w.isMounted())
    }

    func testSigtermAndSigintUnmountCleanly() throws {
        try w.populate(files: 3)
        try w.snapshot("S", format: "native-full")
        for sig in [SIGTERM, SIGINT] {
            try w.mount()
            let daemon = try XCTUnwrap(w.daemon)
            kill(daemon.processIdentifier, sig)
            let end = Date().addingTimeInterval(30)
            while daemon.isRunning && Date() < end { usleep(50_000) }
            guard !daemon.isRunning else {
                // Reading a running Process's status traps; fail this test, not the whole run.
                XCTFail("signal \(sig) did not stop the daemon: \(w.log())")
                kill(daemon.processIdentifier, SIGKILL)
                return
            }
            XCTAssertEqual(daemon.terminationStatus, 0, w.log())
            XCTAssertFalse(w.isMounted(), "signal \(sig) left the mount behind")
            XCTAssertTrue(w.log().contains("unmounted"), w.log())
        }
    }

    func testDemoSaysWhatToTryWhileItRunsEvenIntoAPipe() throws {
        // `Scripts/demo | tee demo.log`: stdout is a pipe, and the hints must arrive while the demo runs.
        let dir = w.root.appendingPathComponent("demo").path
        let mnt = dir + "/mnt"
        let p = Process()
        p.executableURL = URL(fileURLWithPath: snapfsBinary)
        p.arguments = ["demo", "--dir", dir]
        let out = Pipe()
        p.standardOutput = out
        p.standardError = FileHandle.nullDevice
        let seen = LockedText()
        out.fileHandleForReading.readabilityHandler = { h in seen.append(h.availableData) }
        try p.run()
        defer {
            if p.isRunning { kill(p.processIdentifier, SIGKILL); p.waitUntilExit() }
            out.fileHandleForReading.readabilityHandler = nil
            _ = Command.run("/bin/fusermount3", ["-uz", mnt])
        }
        let mounted = { isMountpoint(mnt) }
        let end = Date().addingTimeInterval(60)
        while !(seen.text.contains("Press Ctrl-C") && mounted()) && p.isRunning && Date() < end { usleep(100_000) }
        XCTAssertTrue(p.isRunning, "the demo stopped: \(seen.text)")
        XCTAssertTrue(mounted(), "the demo did not mount \(mnt)")
        XCTAssertTrue(seen.text.contains("echo before-upgrade > \(mnt)/.snapfs/trigger/canonical"), "no hints while running: '\(seen.text)'")
        kill(p.processIdentifier, SIGTERM)
        p.waitUntilExit()
        XCTAssertEqual(p.terminationStatus, 0)
        XCTAssertFalse(mounted(), "SIGTERM left the demo's mount behind")
    }

    func testSigkillMidDeleteAndMidTriggerLosesNothing() throws {
        try w.populate(files: 300)
        // Large enough that a full snapshot is still being written when the daemon is killed.
        for i in 0..<6 { try w.writeState("large/blob-\(i).bin", bytes: 24 * 1024 * 1024, seed: UInt64(100 + i)) }
        try w.snapshot("S", format: "native-full")
        try w.writeState("changed.dat", bytes: 999, seed: 4)
        try w.snapshot("T")
        for round in 0..<3 {
            try w.mount(["--clear-stale"])
            let label = "crash-\(round)"
            let trigger = Process(), rm = Process()
            trigger.executableURL = URL(fileURLWithPath: "/bin/sh")
            trigger.arguments = ["-c", "echo \(label) > \(shellQuote(w.m + "/.snapfs/trigger/native-full"))"]
            rm.executableURL = URL(fileURLWithPath: "/bin/rm")
            rm.arguments = ["-rf", w.m + "/S"]
            for p in [trigger, rm] { p.standardError = FileHandle.nullDevice; p.standardOutput = FileHandle.nullDevice }
            try trigger.run()
            // Kill once the trigger's snapshot is being written: mid-trigger for certain, and `rm -rf` of 300 files wherever it got to.
            let store = try w.openStore()
            let deadline = Date().addingTimeInterval(30)
            func running() -> Bool { ((try? store.requests()) ?? []).contains { $0.label == label && $0.state == .running } }
            while Date() < deadline && !running() { usleep(5_000) }
            XCTAssertTrue(running(), "the trigger did not start")
            try rm.run()
            usleep(UInt32(20_000 * round))
            w.killDaemon()
            for p in [trigger, rm] {
                let end = Date().addingTimeInterval(30)
                while p.isRunning && Date() < end { usleep(20_000) }
                XCTAssertFalse(p.isRunning, "a client hung on the dead mount")
                if p.isRunning { kill(p.processIdentifier, SIGKILL) }
            }
            _ = Command.run("/bin/fusermount3", ["-u", "-z", w.m], timeout: 30)
            try w.mount(["--clear-stale"])
            w.verifyClean()
            let names = try store.snapshots().map(\.name)
            let req = try store.requests().last { $0.label == label }
            print("SIGKILL round \(round): snapshots \(names); request \(req?.state.rawValue ?? "-"): \(req?.error ?? "")")
            XCTAssertNotEqual(req?.state, .running, "a request of a dead daemon stays open")
            XCTAssertTrue(names.contains("T"), "\(names)")
            XCTAssertEqual(treeDigest(w.m + "/T"), treeDigest(w.expected.appendingPathComponent("T").path))
            if names.contains("S") {
                XCTAssertEqual(treeDigest(w.m + "/S"), treeDigest(w.expected.appendingPathComponent("S").path))
            }
            if names.contains(label) {
                XCTAssertEqual(req?.state, .complete)
                XCTAssertEqual(treeDigest(w.m + "/" + label), treeDigest(w.state.path))
            }
            w.unmount()
        }
        w.verifyClean()
    }
}

/// Text read from a pipe on another thread.
final class LockedText: Sendable {
    private let data = Mutex(Data())
    func append(_ d: Data) { data.withLock { $0.append(d) } }
    var text: String { data.withLock { String(decoding: $0, as: UTF8.self) } }
}
