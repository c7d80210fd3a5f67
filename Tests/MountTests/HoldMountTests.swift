import FlinkFixtures
import Foundation
import SnapStore
import XCTest
#if canImport(Glibc)
import Glibc
#endif

/// Holds through the mount: `setfattr -n user.snapfs.hold -v REASON S` holds S, `setfattr -x` releases it, and a
/// held snapshot refuses `rm -rf` and `mv` with EBUSY, with the reason in `.snapfs/events`.
final class HoldMountTests: MountTestCase {
    private func twoSnapshotsAndARecoveryPoint() throws {
        try w.populate()
        try w.snapshot("S", format: "native-full")
        try w.writeState("added.dat", bytes: 7000, seed: 901)
        try w.snapshot("T")
        try w.writeState("newest.dat", bytes: 100, seed: 902)
        try w.snapshot("U")
    }

    private func events() -> String { (try? String(contentsOfFile: w.m + "/.snapfs/events", encoding: .utf8)) ?? "" }

    func testAHoldSetWithSetfattrRefusesRmRfAndMvUntilItIsRemoved() throws {
        try twoSnapshotsAndARecoveryPoint()
        try w.mount()
        let S = shellQuote(w.m + "/S")
        let set = Command.sh("setfattr -n user.snapfs.hold -v 'incident 9: keep' \(S)")
        XCTAssertTrue(set.ok, set.summary)
        XCTAssertEqual(Command.sh("getfattr -n user.snapfs.hold --only-values \(S)").out, "incident 9: keep")
        XCTAssertFalse(Command.sh("getfattr -d -m user.snapfs \(S)").out.contains("user.snapfs.hold"), "asked for by name only: copies do not carry it")
        XCTAssertTrue(w.snapfs(["list", w.s]).out.contains("(held: incident 9: keep)"))
        XCTAssertEqual(Command.sh("getfattr -n user.snapfs.deletable --only-values \(S)").out, "no: held: incident 9: keep")

        let rm = Command.sh("rm -rf \(S)")
        XCTAssertFalse(rm.ok)
        XCTAssertTrue(rm.err.contains("Device or resource busy"), rm.summary)
        XCTAssertEqual(w.errnoOf("os.rmdir('\(w.m)/S')"), "EBUSY")
        let mv = Command.sh("mv \(S) \(shellQuote(w.m + "/S2"))")
        XCTAssertFalse(mv.ok)
        XCTAssertTrue(mv.err.contains("Device or resource busy"), mv.summary)
        XCTAssertEqual(w.rootNames(), ["S", "T", "U", "latest"])
        XCTAssertEqual(treeDigest(w.m + "/S"), treeDigest(w.expected.appendingPathComponent("S").path), "nothing of S went")
        let ev = events()
        XCTAssertTrue(ev.contains("held: incident 9: keep"), ev)
        XCTAssertTrue(ev.contains("move to 'S2' refused"), ev)
        XCTAssertTrue((try? String(contentsOfFile: w.m + "/.snapfs/snapshots/S.json", encoding: .utf8))?.contains("\"held\" : true") == true)

        // A bad reason and a replace of a hold that is not there are refused as setxattr(2) says.
        XCTAssertEqual(w.errnoOf("os.setxattr('\(w.m)/T', 'user.snapfs.hold', b'')"), "EINVAL")
        XCTAssertEqual(w.errnoOf("os.setxattr('\(w.m)/T', 'user.snapfs.hold', b'two\\nlines')"), "EINVAL")
        XCTAssertEqual(w.errnoOf("os.setxattr('\(w.m)/T', 'user.snapfs.hold', b'\\xff\\xfe')"), "EINVAL")
        XCTAssertEqual(w.errnoOf("os.setxattr('\(w.m)/T', 'user.snapfs.hold', b'x', os.XATTR_REPLACE)"), "ENODATA")
        XCTAssertEqual(w.errnoOf("os.setxattr('\(w.m)/S', 'user.snapfs.hold', b'x', os.XATTR_CREATE)"), "EEXIST")
        XCTAssertEqual(w.errnoOf("os.setxattr('\(w.m)/S/big.dat', 'user.snapfs.hold', b'x')"), "EROFS", "only a snapshot can be held")

        // A hold set by the command line, seen by the mount.
        XCTAssertTrue(w.snapfs(["hold", w.s, "T", "--reason", "from the cli"]).ok)
        XCTAssertEqual(Command.sh("getfattr -n user.snapfs.hold --only-values \(shellQuote(w.m + "/T"))").out, "from the cli")
        XCTAssertTrue(Command.sh("rm -rf \(shellQuote(w.m + "/T"))").err.contains("Device or resource busy"))

        // Released: the attribute is gone and the snapshot goes.
        let release = Command.sh("setfattr -x user.snapfs.hold \(S)")
        XCTAssertTrue(release.ok, release.summary)
        XCTAssertTrue(Command.sh("getfattr -n user.snapfs.hold \(S)").err.contains("No such attribute"))
        XCTAssertFalse(Command.sh("getfattr -d -m user.snapfs \(S)").out.contains("user.snapfs.hold"))
        XCTAssertEqual(w.errnoOf("os.removexattr('\(w.m)/S', 'user.snapfs.hold')"), "ENODATA")
        let gone = Command.sh("rm -rf \(S)")
        XCTAssertTrue(gone.ok, gone.summary)
        XCTAssertEqual(w.rootNames(), ["T", "U", "latest"])
        XCTAssertTrue(events().contains("hold released"), events())
        w.unmount()
        XCTAssertEqual(try w.openStore().hold(of: "T")?.reason, "from the cli")
        w.verifyClean()
    }

    /// A Flink store alike: a checkpoint held through the mount refuses `rm -rf` until released, and its files stay.
    func testAHeldFlinkCheckpointRefusesRmRfUntilReleased() throws {
        try FileManager.default.removeItem(at: w.storeDir)
        try FileManager.default.createDirectory(at: w.storeDir, withIntermediateDirectories: true)
        let truth = try SyntheticFlinkStore.write(at: w.storeDir)
        XCTAssertTrue(w.snapfs(["init", w.s, "--engine", "flink", "--path-map", "\(SyntheticFlinkStore.writtenAt)=\(w.s)"]).ok)
        try w.mount()
        let name = "0a0a0a-chk-1"
        let directory = try XCTUnwrap(truth.first?.directory)
        let chk = shellQuote(w.m + "/" + name)
        XCTAssertTrue(Command.sh("setfattr -n user.snapfs.hold -v 'flink drill' \(chk)").ok)
        let rm = Command.sh("rm -rf \(chk)")
        XCTAssertTrue(rm.err.contains("Device or resource busy"), rm.summary)
        XCTAssertTrue(FileManager.default.fileExists(atPath: w.s + "/" + directory + "/_metadata"))
        XCTAssertTrue(events().contains("held: flink drill"), events())
        XCTAssertTrue(w.snapfs(["list", w.s]).out.contains("(held: flink drill)"))
        XCTAssertTrue(Command.sh("setfattr -x user.snapfs.hold \(chk)").ok)
        let gone = Command.sh("rm -rf \(chk)")
        XCTAssertTrue(gone.ok, gone.summary)
        XCTAssertFalse(w.rootNames().contains(name))
        XCTAssertFalse(FileManager.default.fileExists(atPath: w.s + "/" + directory))
        w.unmount()
    }

    /// With `--allow-other`, another user may not delete snapshots, so may not hold or release them either, even
    /// where the kernel would let them write the snapshot directory's attributes (a world-writable state root).
    func testAnotherUserCanNeitherHoldNorRelease() throws {
        try XCTSkipIf(getuid() != 0, "creating and becoming a second user needs root")
        let user = "snapfs-test"
        let made = Command.sh("id -u \(user) >/dev/null 2>&1 || useradd --system --no-create-home --shell /usr/sbin/nologin \(user)")
        XCTAssertTrue(made.ok, made.summary)
        try w.populate()
        XCTAssertEqual(chmod(w.state.path, 0o777), 0)
        try w.snapshot("open")
        try w.snapshot("newer")
        try w.mount(["--allow-other"])
        let asOther = { (script: String) in
            Command.run("/usr/bin/setpriv", ["--reuid=\(user)", "--regid=\(user)", "--clear-groups", "--", "/bin/bash", "-c", script])
        }
        XCTAssertEqual(Command.sh("stat -c %a \(shellQuote(w.m + "/open"))").out, "777\n", "the kernel alone would allow the write")
        let open = shellQuote(w.m + "/open")
        let set = asOther("setfattr -n user.snapfs.hold -v mine \(open)")
        XCTAssertFalse(set.ok)
        XCTAssertTrue(set.err.contains("Permission denied"), set.summary)
        XCTAssertNil(try w.openStore().hold(of: "open"))

        XCTAssertTrue(Command.sh("setfattr -n user.snapfs.hold -v 'owner says keep' \(open)").ok)
        XCTAssertEqual(asOther("getfattr -n user.snapfs.hold --only-values \(open)").out, "owner says keep", "reading a hold is open to all")
        let remove = asOther("setfattr -x user.snapfs.hold \(open)")
        XCTAssertFalse(remove.ok)
        XCTAssertTrue(remove.err.contains("Permission denied"), remove.summary)
        XCTAssertEqual(try w.openStore().hold(of: "open")?.reason, "owner says keep")
        XCTAssertTrue(events().contains("by uid"), events())
        w.unmount()
    }
}
