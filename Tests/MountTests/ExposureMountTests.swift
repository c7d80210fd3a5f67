import Foundation
import SnapStore
import XCTest
#if canImport(Glibc)
import Glibc
#endif

/// An unprivileged user, to check what someone other than the store's owner can do through an `--allow-other` mount.
private let otherUser = "snapfs-test"

private func ensureOtherUser() throws {
    try XCTSkipIf(getuid() != 0, "creating and becoming a second user needs root")
    let r = Command.sh("id -u \(otherUser) >/dev/null 2>&1 || useradd --system --no-create-home --shell /usr/sbin/nologin \(otherUser)")
    XCTAssertTrue(r.ok, "cannot create the test user: \(r.summary)")
}

/// Runs `script` as the unprivileged user, with no supplementary groups.
private func asOther(_ script: String) -> Run {
    Command.run("/usr/bin/setpriv", ["--reuid=\(otherUser)", "--regid=\(otherUser)", "--clear-groups", "--", "/bin/bash", "-c", script])
}

final class ExposureMountTests: MountTestCase {
    /// SPEC §5: store files are readable by their owner only; and the mount lets no one read through it what the
    /// state directory kept from them, or change anything they could not change in the store.
    func testAnotherUserReadsOnlyWhatTheStateDirectoryLetsThemAndChangesNothing() throws {
        try ensureOtherUser()
        try w.writeState("public.dat", bytes: 1000, seed: 1)
        try w.writeState("secret.dat", bytes: 1000, seed: 2)
        XCTAssertEqual(chmod(w.state.appendingPathComponent("public.dat").path, 0o644), 0)
        XCTAssertEqual(chmod(w.state.appendingPathComponent("secret.dat").path, 0o600), 0)
        XCTAssertEqual(chmod(w.state.path, 0o700), 0)
        // Taken with a permissive umask: the store's modes must not depend on it.
        let r = Command.sh("umask 000 && \(shellQuote(snapfsBinary)) trigger \(shellQuote(w.s)) --format canonical --label closed")
        XCTAssertTrue(r.ok, r.summary)
        XCTAssertEqual(chmod(w.state.path, 0o755), 0)
        try w.snapshot("open", format: "native-full")

        // On disk: every directory 0700, every file 0600, and the other user can open none of it.
        var st = stat()
        var checked = 0
        let en = FileManager.default.enumerator(atPath: w.s)!
        XCTAssertEqual(stat(w.s, &st), 0)
        XCTAssertEqual(st.st_mode & 0o777, 0o700)
        while let rel = en.nextObject() as? String {
            XCTAssertEqual(lstat(w.s + "/" + rel, &st), 0)
            let want: mode_t = (st.st_mode & S_IFMT) == S_IFDIR ? 0o700 : 0o600
            XCTAssertEqual(st.st_mode & 0o777, want, "store/\(rel)")
            checked += 1
        }
        XCTAssertGreaterThan(checked, 6)
        let canonicalCopy = Command.sh("find \(shellQuote(w.s))/canonical -name public.dat | head -1").out.trimmingCharacters(in: .whitespacesAndNewlines)
        XCTAssertFalse(canonicalCopy.isEmpty)
        let direct = asOther("cat \(shellQuote(canonicalCopy))")
        XCTAssertFalse(direct.ok, "the store's canonical tree is not readable by others: \(direct.summary)")

        try w.mount(["--allow-other"])
        XCTAssertEqual(Command.sh("stat -c '%a %u' \(shellQuote(w.m + "/closed")) \(shellQuote(w.m + "/open"))").out, "700 0\n755 0\n",
                       "each snapshot's root shows its state root's mode and owner when it was taken")
        XCTAssertTrue(asOther("ls \(shellQuote(w.m))").ok, "the list of snapshots is visible")
        for (path, readable) in [("closed/public.dat", false), ("closed/secret.dat", false), ("open/public.dat", true), ("open/secret.dat", false)] {
            let cat = asOther("cat \(shellQuote(w.m + "/" + path)) | sha256sum")
            let got = cat.out.split(separator: " ").first.map(String.init)
            let want = Store.sha256(ofFile: w.state.appendingPathComponent((path as NSString).lastPathComponent).path)
            if readable {
                XCTAssertEqual(got, want, "\(path) is readable as the state directory allowed: \(cat.summary)")
            } else {
                XCTAssertTrue(cat.err.contains("Permission denied"), "\(path) is not readable by another user: \(cat.summary)")
            }
        }
        XCTAssertTrue(asOther("ls \(shellQuote(w.m + "/closed"))").err.contains("Permission denied"))

        let before = w.rootNames()
        let attempts = [
            "rm -rf \(shellQuote(w.m + "/open"))",
            "rm -f \(shellQuote(w.m + "/open/public.dat"))",
            "rmdir \(shellQuote(w.m + "/closed"))",
            "mv \(shellQuote(w.m + "/open")) \(shellQuote(w.m + "/moved"))",
            "echo stolen > \(shellQuote(w.m + "/.snapfs/trigger/canonical"))",
            "touch \(shellQuote(w.m + "/.snapfs/trigger/default"))",
            "mkdir \(shellQuote(w.m + "/by-other"))",
        ]
        for a in attempts {
            let r = asOther(a)
            XCTAssertFalse(r.ok, "refused: \(a)")
            XCTAssertTrue(r.err.contains("Permission denied") || r.err.contains("Operation not permitted"), "\(a): \(r.summary)")
        }
        XCTAssertEqual(w.rootNames(), before, "nothing was deleted, moved or taken")
        XCTAssertEqual(treeDigest(w.m + "/open"), treeDigest(w.expected.appendingPathComponent("open").path))
        w.unmount()
        w.verifyClean()
    }

    /// A read-only store (here a read-only bind mount, which even root cannot write through) mounts and serves its
    /// snapshots; changes are refused with EROFS and nothing is taken.
    func testAReadOnlyStoreMountsServesAndRefusesChanges() throws {
        try w.populate()
        try w.snapshot("S", format: "native-full")
        try w.snapshot("T")
        let ro = w.root.appendingPathComponent("ro").path
        try FileManager.default.createDirectory(atPath: ro, withIntermediateDirectories: true)
        let bound = Command.sh("mount --bind \(shellQuote(w.s)) \(shellQuote(ro)) && mount -o remount,bind,ro \(shellQuote(ro))")
        XCTAssertTrue(bound.ok, bound.summary)
        defer { w.unmount(); _ = Command.sh("umount \(shellQuote(ro))") }
        try w.mount(store: ro)
        XCTAssertEqual(w.rootNames(), ["S", "T", "latest"])
        XCTAssertEqual(treeDigest(w.m + "/T"), treeDigest(w.expected.appendingPathComponent("T").path))
        XCTAssertEqual(w.errnoOf("os.rmdir('\(w.m)/S')"), "EROFS")
        XCTAssertEqual(w.errnoOf("os.unlink('\(w.m)/S/big.dat')"), "EROFS")
        XCTAssertEqual(w.errnoOf("os.rename('\(w.m)/S', '\(w.m)/S2')"), "EROFS")
        XCTAssertEqual(w.errnoOf("os.write(os.open('\(w.m)/.snapfs/trigger/canonical', os.O_WRONLY | os.O_TRUNC), b'x\\n')"), "EROFS")
        XCTAssertEqual(w.errnoOf("os.mkdir('\(w.m)/new')"), "EROFS")
        XCTAssertEqual(w.rootNames(), ["S", "T", "latest"])
        XCTAssertTrue(w.log().contains("read-only"), w.log())
    }

    /// A full disk: the trigger's write fails with ENOSPC (not EINVAL or EIO), the daemon says so in its log at
    /// warning or above, and the store is as it was.
    func testAFullStoreAnswersENOSPCAndLogsIt() throws {
        // The store on a 1 MiB tmpfs.
        try FileManager.default.removeItem(at: w.storeDir)
        try FileManager.default.createDirectory(at: w.storeDir, withIntermediateDirectories: true)
        let m = Command.sh("mount -t tmpfs -o size=1m tmpfs \(shellQuote(w.s))")
        XCTAssertTrue(m.ok, m.summary)
        defer { w.unmount(); _ = Command.sh("umount \(shellQuote(w.s))") }
        XCTAssertTrue(w.snapfs(["init", w.s, "--state", w.state.path]).ok)
        try w.writeState("small", bytes: 100, seed: 1)
        try w.snapshot("fits", format: "native-full")
        try w.mount()

        try w.writeState("big", bytes: 3 << 20, seed: 2)
        XCTAssertEqual(w.errnoOf("os.write(os.open('\(w.m)/.snapfs/trigger/native-full', os.O_WRONLY | os.O_TRUNC), b'too-big\\n')"), "ENOSPC")
        let echo = Command.sh("echo too-big > \(shellQuote(w.m + "/.snapfs/trigger/native-full"))")
        XCTAssertTrue(echo.err.contains("No space left on device"), echo.summary)

        // Full to the last block: not even the request can be recorded.
        try FileManager.default.removeItem(at: w.state.appendingPathComponent("big"))
        _ = Command.sh("dd if=/dev/zero of=\(shellQuote(w.s))/filler bs=4096 2>/dev/null")
        let full = w.errnoOf("os.write(os.open('\(w.m)/.snapfs/trigger/native-full', os.O_WRONLY | os.O_TRUNC), b'no-room\\n')")
        XCTAssertEqual(full, "ENOSPC")
        try FileManager.default.removeItem(atPath: w.s + "/filler")

        let lines = w.log().split(separator: "\n").filter { $0.contains("ENOSPC") }
        XCTAssertFalse(lines.isEmpty, "the daemon logs the failure: \(w.log().suffix(3000))")
        XCTAssertTrue(lines.allSatisfy { $0.contains("warning") || $0.contains("error") || $0.contains("critical") }, lines.joined(separator: "\n"))
        XCTAssertEqual(w.rootNames(), ["fits", "latest"])
        w.unmount()
        w.verifyClean()
    }
}
