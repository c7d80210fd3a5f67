import Foundation
import SnapStore
import XCTest
#if canImport(Glibc)
import Glibc
#endif

/// Runs `script` in bash, as root would type it; returns exit status and output.
@discardableResult
func shell(_ script: String, asUser user: String? = nil) -> (status: Int32, out: String, err: String) {
    let p = Process()
    if let user {
        p.executableURL = URL(fileURLWithPath: "/usr/bin/setpriv")
        p.arguments = ["--reuid=\(user)", "--regid=\(user)", "--clear-groups", "--", "/bin/bash", "-c", script]
    } else {
        p.executableURL = URL(fileURLWithPath: "/bin/bash")
        p.arguments = ["-c", script]
    }
    let out = Pipe(), err = Pipe()
    p.standardOutput = out; p.standardError = err
    p.standardInput = FileHandle.nullDevice
    do { try p.run() } catch { return (-1, "", "\(error)") }
    let o = out.fileHandleForReading.readDataToEndOfFile(), e = err.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    return (p.terminationStatus, String(decoding: o, as: UTF8.self), String(decoding: e, as: UTF8.self))
}

func q(_ s: String) -> String { "'" + s.replacingOccurrences(of: "'", with: "'\\''") + "'" }

/// An unprivileged user for tests that check what someone other than the store's owner can do.
let unprivilegedUser = "snapfs-test"

func ensureUnprivilegedUser() throws {
    try XCTSkipIf(getuid() != 0, "creating and becoming a second user needs root")
    let r = shell("id -u \(unprivilegedUser) >/dev/null 2>&1 || useradd --system --no-create-home --shell /usr/sbin/nologin \(unprivilegedUser)")
    XCTAssertEqual(r.status, 0, "cannot create the test user: \(r.err)")
}

final class ReadOnlyStoreCLITests: XCTestCase {
    private func readOnlyChecks(_ store: String, out: String, expect: [String: String], as user: String?, file: StaticString = #filePath, line: UInt = #line) {
        let bin = q(SnapFSTool.executable.path)
        for cmd in ["list \(q(store))", "list \(q(store)) --json", "show \(q(store)) one", "show \(q(store)) one --files --json",
                    "verify \(q(store))", "status \(q(store))", "events \(q(store))", "export \(q(store)) one \(q(out))"] {
            let r = shell("\(bin) \(cmd)", asUser: user)
            XCTAssertEqual(r.status, 0, "read-only store: snapfs \(cmd): \(r.out) \(r.err)", file: file, line: line)
        }
        var got: [String: String] = [:]
        for (k, _) in expect { got[k] = try? String(contentsOfFile: out + "/files/" + k, encoding: .utf8) }
        XCTAssertEqual(got, expect, "the export of a read-only store is complete", file: file, line: line)
        for cmd in ["delete \(q(store)) one", "move \(q(store)) one other", "gc \(q(store)) --grace 0", "trigger \(q(store)) --label new"] {
            let r = shell("\(bin) \(cmd)", asUser: user)
            XCTAssertEqual(r.status, 6, "read-only store: snapfs \(cmd) is refused: \(r.out) \(r.err)", file: file, line: line)
            XCTAssertTrue(r.err.contains("read-only"), "snapfs \(cmd): \(r.err)", file: file, line: line)
        }
    }

    /// A read-only bind mount: even root cannot write through it.
    func testAReadOnlyBindMountCanBeListedShownVerifiedAndExported() throws {
        try XCTSkipIf(getuid() != 0, "a bind mount needs root")
        let s = try Scratch()
        let state = s.path("state"), store = s.path("store"), ro = s.path("ro")
        try FileManager.default.createDirectory(atPath: state, withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: ro, withIntermediateDirectories: true)
        try Data("alpha".utf8).write(to: URL(fileURLWithPath: state + "/a"))
        _ = try SnapFSTool.ok(["init", store, "--state", state])
        _ = try SnapFSTool.ok(["trigger", store, "--format", "native-full", "--label", "one"])
        let bound = shell("mount --bind \(q(store)) \(q(ro)) && mount -o remount,bind,ro \(q(ro))")
        XCTAssertEqual(bound.status, 0, bound.err)
        defer { shell("umount \(q(ro))") }
        readOnlyChecks(ro, out: s.path("out"), expect: ["a": "alpha"], as: nil)
        XCTAssertEqual(try SnapFSTool.ok(["list", store]).contains("one"), true, "the store is as it was")
    }

    /// A store its user made read-only with `chmod -R a-w`, used by that (unprivileged) user.
    func testAStoreWithoutWritePermissionCanBeReadByItsUser() throws {
        try ensureUnprivilegedUser()
        let s = try Scratch()
        XCTAssertEqual(shell("chown \(unprivilegedUser) \(q(s.root.path))").status, 0)
        let bin = q(SnapFSTool.executable.path)
        let state = s.path("state"), store = s.path("store")
        let made = shell("""
            set -e
            mkdir -p \(q(state)); printf alpha > \(q(state))/a
            \(bin) init \(q(store)) --state \(q(state))
            \(bin) trigger \(q(store)) --format native-full --label one
            chmod -R a-w \(q(store))
            """, asUser: unprivilegedUser)
        XCTAssertEqual(made.status, 0, made.out + made.err)
        defer { shell("chmod -R u+w \(q(store))") }
        readOnlyChecks(store, out: s.path("out"), expect: ["a": "alpha"], as: unprivilegedUser)

        // Someone else's (owner-only) store: permission denied, not "not a store" and not "damaged".
        let rootStore = s.path("root-store"), rootState = s.path("root-state")
        try FileManager.default.createDirectory(atPath: rootState, withIntermediateDirectories: true)
        _ = try SnapFSTool.ok(["init", rootStore, "--state", rootState])
        let denied = shell("\(bin) list \(q(rootStore))", asUser: unprivilegedUser)
        XCTAssertEqual(denied.status, 8, denied.err)
        XCTAssertTrue(denied.err.contains("Permission denied"), denied.err)
    }
}

/// A full disk is a full disk (exit 8, "No space left on device"), never "store damaged", and the store stays as it was.
final class FullDiskCLITests: XCTestCase {
    func testAFullStoreFailsWithENOSPCAndLosesNothing() throws {
        try XCTSkipIf(getuid() != 0, "mounting a small tmpfs needs root")
        let s = try Scratch()
        let state = s.path("state"), small = s.path("small"), store = small + "/store"
        try FileManager.default.createDirectory(atPath: state, withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: small, withIntermediateDirectories: true)
        let m = shell("mount -t tmpfs -o size=1m tmpfs \(q(small))")
        XCTAssertEqual(m.status, 0, m.err)
        defer { shell("umount \(q(small))") }
        try Data("small".utf8).write(to: URL(fileURLWithPath: state + "/a"))
        _ = try SnapFSTool.ok(["init", store, "--state", state])
        _ = try SnapFSTool.ok(["trigger", store, "--format", "native-full", "--label", "fits"])

        // An object that does not fit.
        try Data(repeating: 7, count: 3 << 20).write(to: URL(fileURLWithPath: state + "/big"))
        var r = try SnapFSTool.run(["trigger", store, "--format", "native-full", "--label", "too-big"])
        XCTAssertEqual(r.status, 8, r.stderr)
        XCTAssertTrue(r.stderr.contains("No space left on device"), r.stderr)
        XCTAssertFalse(r.stderr.contains("damaged"), r.stderr)

        // A disk so full that not even the catalog can record the request.
        try FileManager.default.removeItem(atPath: state + "/big")
        shell("dd if=/dev/zero of=\(q(small))/filler bs=4096 2>/dev/null; sync")
        r = try SnapFSTool.run(["trigger", store, "--format", "native-full", "--label", "no-room"])
        XCTAssertEqual(r.status, 8, r.stderr)
        XCTAssertTrue(r.stderr.contains("No space left on device"), r.stderr)
        XCTAssertFalse(r.stderr.contains("damaged"), r.stderr)

        try FileManager.default.removeItem(atPath: small + "/filler")
        let listed = try JSONDecoder().decode([ListedSnapshot].self, from: Data(try SnapFSTool.ok(["list", store, "--json"]).utf8))
        XCTAssertEqual(listed.map(\.name), ["fits"])
        let v = try SnapFSTool.run(["verify", store])
        XCTAssertEqual(v.status, 0, "nothing half-written is left: \(v.stdout) \(v.stderr)")
    }
}
