import Foundation
import LocalEngine
import SnapFileOps
import SnapStore
import Synchronization
import XCTest

final class InodeTests: XCTestCase {
    func testInodeNumbersAreStableAcrossInstances() throws {
        let f = try Fixture()
        try f.write("a/one", "1")
        try f.write("two", "2")
        let s = try f.snapshot(.nativeFull)
        let paths = [s.name, "\(s.name)/a", "\(s.name)/a/one", "\(s.name)/two", "latest", ".snapfs", ".snapfs/trigger/canonical"]
        let first = try paths.map { try f.resolve($0, in: f.fs).attr.ino }
        let other = f.makeFS()
        let second = try paths.map { try f.resolve($0, in: other).attr.ino }
        XCTAssertEqual(first, second)
        XCTAssertEqual(Set(first).count, first.count, "distinct nodes got one number")
    }

    func testSharedObjectIsOneInodeCountedPerSnapshot() throws {
        let f = try Fixture(running: false)
        try f.write("shared", String(repeating: "s", count: 3000))
        try f.write("first-only", "x")
        let a = try f.snapshot(.nativeFull)
        try FileManager.default.removeItem(at: f.state.appendingPathComponent("first-only"))
        try f.write("second-only", "y")
        let b = try f.snapshot(.nativeIncremental)
        let sa = try f.resolve("\(a.name)/shared").attr, sb = try f.resolve("\(b.name)/shared").attr
        XCTAssertEqual(sa.ino, sb.ino)
        XCTAssertEqual(sb.nlink, 2)
        XCTAssertEqual(sb.size, 3000)
        var st = stat()
        XCTAssertEqual(stat(f.state.appendingPathComponent("shared").path, &st), 0)
        XCTAssertEqual(sb.blocks, Int64(st.st_blocks), "the blocks the stored file occupies, as the state's did")
        XCTAssertEqual(try f.resolve("\(b.name)/second-only").attr.nlink, 1)
        XCTAssertEqual(try f.read("\(b.name)/shared"), Data(String(repeating: "s", count: 3000).utf8))

        try f.fs.rmdir(parent: InodeNumber.root, name: a.name)
        XCTAssertFSError(try f.resolve(a.name), ENOENT)
        XCTAssertEqual(try f.fs.getattr(sb.ino).nlink, 1, "link count follows the deleted snapshot")
        XCTAssertEqual(try f.read("\(b.name)/shared").count, 3000)
    }

    func testNameStartingWithACombiningMarkStaysInItsDirectory() throws {
        // "/" followed by U+0301 is one Character to Swift; a path is cut at the byte, as the kernel cuts it.
        let f = try Fixture(running: false)
        let name = "\u{301}e"
        try f.write("d/\(name)", "accent")
        let s = try f.snapshot(.nativeFull)
        XCTAssertEqual(try f.names(s.name), ["d"])
        XCTAssertEqual(try f.names("\(s.name)/d"), [name])
        let e = try f.fs.lookup(parent: try f.ino("\(s.name)/d"), name: name)
        XCTAssertEqual(e.attr.size, 6)
    }
}

final class StagingTests: XCTestCase {
    func testUnlinkIsStagedAndComesBackAfterTheWindow() throws {
        let f = try Fixture(stageWindow: 60, running: false)
        try f.write("keep", "k")
        try f.write("gone", "g")
        let s = try f.snapshot(.nativeFull)
        let objectsBefore = try f.store.objects()
        try f.fs.unlink(parent: try f.ino(s.name), name: "gone")
        XCTAssertEqual(try f.names(s.name), ["keep"])
        XCTAssertFSError(try f.resolve("\(s.name)/gone"), ENOENT)
        XCTAssertEqual(try f.store.objects(), objectsBefore, "staging touches nothing on disk")
        XCTAssertEqual(try f.store.entries(of: s.id).count, 2)

        f.clock.advance(30)
        XCTAssertFSError(try f.resolve("\(s.name)/gone"), ENOENT)
        f.clock.advance(31)
        XCTAssertEqual(try f.names(s.name), ["gone", "keep"])
        XCTAssertEqual(try f.read("\(s.name)/gone"), Data("g".utf8))
    }

    func testRestartForgetsStagedEntries() throws {
        let f = try Fixture(running: false)
        try f.write("gone", "g")
        let s = try f.snapshot(.nativeFull)
        try f.fs.unlink(parent: try f.ino(s.name), name: "gone")
        XCTAssertEqual(try f.resolve("\(s.name)/gone", in: f.makeFS()).attr.size, 1)
    }

    func testRecursiveRemoveThenRmdirDeletesTheSnapshot() throws {
        let f = try Fixture(running: true)
        try f.write("a/b/deep", "d")
        try f.write("top", "t")
        let old = try f.snapshot(.nativeFull)
        try f.write("newer", "n")
        _ = try f.snapshot(.nativeIncremental)
        let onlyOld = try f.store.entries(of: old.id).filter { $0.type == .file && $0.links == 1 }.compactMap(\.objectPath)
        let shared = try f.store.entries(of: old.id).filter { $0.links > 1 }.compactMap(\.objectPath)
        // What `rm -r old` sends: children first, then each directory, then the snapshot.
        let a = try f.ino("\(old.name)/a"), b = try f.ino("\(old.name)/a/b"), top = try f.ino(old.name)
        try f.fs.unlink(parent: b, name: "deep")
        XCTAssertFSError(try f.fs.rmdir(parent: top, name: "a"), ENOTEMPTY)
        try f.fs.rmdir(parent: a, name: "b")
        try f.fs.rmdir(parent: top, name: "a")
        try f.fs.unlink(parent: top, name: "top")
        XCTAssertEqual(try f.names(old.name), [])
        try f.fs.rmdir(parent: InodeNumber.root, name: old.name)
        XCTAssertThrowsError(try f.store.snapshot(named: old.name))
        for p in onlyOld { XCTAssertFalse(FileManager.default.fileExists(atPath: f.store.url(ofObjectPath: p).path), p) }
        for p in shared { XCTAssertTrue(FileManager.default.fileExists(atPath: f.store.url(ofObjectPath: p).path), p) }
    }

    func testRecoveryPointRefusesTheFirstUnlinkAndRmdir() throws {
        let f = try Fixture(running: true)
        try f.write("d/x", "x")
        let s = try f.snapshot(.nativeFull)
        XCTAssertFSError(try f.fs.unlink(parent: try f.ino("\(s.name)/d"), name: "x"), EBUSY)
        XCTAssertEqual(try f.names("\(s.name)/d"), ["x"], "nothing staged")
        XCTAssertFSError(try f.fs.rmdir(parent: try f.ino(s.name), name: "d"), EBUSY)
        XCTAssertFSError(try f.fs.rmdir(parent: InodeNumber.root, name: s.name), EBUSY)
        XCTAssertNoThrow(try f.store.snapshot(named: s.name))
        let refusals = try f.store.events().filter { $0.type == "refusal" && $0.snapshot == s.name }
        XCTAssertFalse(refusals.isEmpty)
        XCTAssertTrue(refusals.contains { $0.detail.contains("recovery point") }, "\(refusals)")
    }
}

final class RefusalTests: XCTestCase {
    func testWritesInsideASnapshotAreReadOnly() throws {
        let f = try Fixture()
        try f.write("d/file", "x")
        try f.write("link-target", "y")
        let s = try f.snapshot(.nativeFull)
        let dir = try f.ino("\(s.name)/d"), file = try f.ino("\(s.name)/d/file"), top = try f.ino(s.name)
        XCTAssertFSError(try f.fs.create(parent: dir, name: "new"), EROFS)
        XCTAssertFSError(try f.fs.mkdir(parent: dir, name: "new"), EROFS)
        XCTAssertFSError(try f.fs.symlink(parent: dir, name: "l", target: "file"), EROFS)
        XCTAssertFSError(try f.fs.link(file, newParent: dir, newName: "hard"), EROFS)
        XCTAssertFSError(try f.fs.open(file, flags: O_WRONLY), EROFS)
        XCTAssertFSError(try f.fs.open(file, flags: O_RDONLY | O_TRUNC), EROFS)
        // Kernels that skip OPEN deliver the write itself, by inode.
        XCTAssertFSError(try Array("z".utf8).withUnsafeBytes { try f.fs.write(file, offset: 0, data: $0) }, EROFS)
        XCTAssertFSError(try f.fs.setattr(file, SetAttrRequest(size: 0)), EROFS)
        XCTAssertFSError(try f.fs.setattr(file, SetAttrRequest(mode: 0o777)), EROFS)
        XCTAssertFSError(try f.fs.setattr(top, SetAttrRequest(times: true)), EROFS)
        XCTAssertFSError(try f.fs.setxattr(file, name: "user.x"), EROFS)
        XCTAssertFSError(try f.fs.rename(parent: dir, name: "file", newParent: top, newName: "moved", flags: 0), EROFS)
        XCTAssertFSError(try f.fs.rename(parent: InodeNumber.root, name: s.name, newParent: dir, newName: "in", flags: 0), EROFS)
        XCTAssertEqual(try f.read("\(s.name)/d/file"), Data("x".utf8))
    }

    func testControlEntriesCannotBeRenamedOrRemoved() throws {
        let f = try Fixture()
        try f.write("x", "x")
        _ = try f.snapshot()
        let root = InodeNumber.root
        XCTAssertFSError(try f.fs.unlink(parent: root, name: "latest"), EPERM)
        XCTAssertFSError(try f.fs.rmdir(parent: root, name: ".snapfs"), EPERM)
        XCTAssertFSError(try f.fs.rename(parent: root, name: "latest", newParent: root, newName: "other", flags: 0), EPERM)
        XCTAssertFSError(try f.fs.rename(parent: root, name: ".snapfs", newParent: root, newName: "other", flags: 0), EPERM)
        let control = try f.ino(".snapfs")
        XCTAssertFSError(try f.fs.unlink(parent: control, name: "events"), EPERM)
        XCTAssertFSError(try f.fs.rmdir(parent: control, name: "trigger"), EPERM)
        XCTAssertFSError(try f.fs.rename(parent: try f.ino(".snapfs/trigger"), name: "canonical", newParent: root, newName: "c", flags: 0), EPERM)
        XCTAssertFSError(try f.fs.open(try f.ino(".snapfs/status"), flags: O_WRONLY), EPERM)
        XCTAssertFSError(try Array("z".utf8).withUnsafeBytes { try f.fs.write(try f.ino(".snapfs/status"), offset: 0, data: $0) }, EPERM)
    }

    func testMoveRenamesAndNeverReplaces() throws {
        let f = try Fixture(running: false)
        try f.write("x", "x")
        let a = try f.snapshot(.nativeFull), b = try f.snapshot(.nativeFull)
        let root = InodeNumber.root
        let inoBefore = try f.ino(a.name)
        XCTAssertFSError(try f.fs.rename(parent: root, name: a.name, newParent: root, newName: b.name, flags: 0), EEXIST)
        XCTAssertFSError(try f.fs.rename(parent: root, name: a.name, newParent: try f.ino(b.name), newName: a.name, flags: 0), EEXIST)
        XCTAssertFSError(try f.fs.rename(parent: root, name: a.name, newParent: root, newName: "bad name", flags: 0), EINVAL)
        XCTAssertFSError(try f.fs.rename(parent: root, name: a.name, newParent: root, newName: "latest", flags: 0), EEXIST)
        try f.fs.rename(parent: root, name: a.name, newParent: root, newName: "renamed", flags: 0)
        XCTAssertEqual(try f.ino("renamed"), inoBefore, "a move keeps the inode")
        XCTAssertFSError(try f.resolve(a.name), ENOENT)
        XCTAssertEqual(try f.store.snapshot(named: "renamed").id, a.id)
        XCTAssertTrue(try f.store.events().contains { $0.type == "refusal" && $0.detail.contains("never replaced") })

        // The mount applies its own move to its listing without rereading the catalog, unless the catalog changed
        // behind it meanwhile; either way the root lists what the catalog holds.
        let c = try f.snapshot(.nativeFull)
        _ = f.fs.poll()
        try f.store.rename(b.name, to: "moved-elsewhere")
        try f.fs.rename(parent: root, name: "renamed", newParent: root, newName: "again", flags: 0)
        XCTAssertEqual(Set(try f.names("")), Set(try f.store.snapshots().map(\.name) + ["latest", ".snapfs"]))
        try f.fs.rename(parent: root, name: "again", newParent: root, newName: "once-more", flags: 0)
        try f.fs.rmdir(parent: root, name: "moved-elsewhere")
        XCTAssertEqual(try f.names(""), ["once-more", c.name, "latest", ".snapfs"])
        XCTAssertEqual(try f.fs.readlink(try f.ino("latest")), c.name)
        XCTAssertEqual(f.fs.poll().names.sorted(), ["again", "moved-elsewhere", "once-more", "renamed", b.name].sorted(),
                       "every name the kernel may hold is handed to the poller")
    }
}

final class TriggerTests: XCTestCase {
    func testEchoTakesOneSnapshotNamedByTheLabel() throws {
        let f = try Fixture()
        try f.write("x", "x")
        XCTAssertNil(try f.echo("pre-upgrade\n", to: "canonical"))
        let snaps = try f.store.snapshots()
        XCTAssertEqual(snaps.map(\.name), ["pre-upgrade"])
        XCTAssertEqual(snaps.first?.format, .canonical)
        XCTAssertEqual(snaps.first?.kind, .user)
        XCTAssertTrue(try f.names("").contains("pre-upgrade"), "listed when close returns")
        XCTAssertEqual(try f.store.requests().map(\.state), [.complete])
    }

    func testEachTouchTakesExactlyOneSnapshot() throws {
        let f = try Fixture()
        try f.write("x", "x")
        let ino = try f.ino(".snapfs/trigger/native-incremental")
        // `touch`: its time update is the request; opening and closing the file reach no one.
        _ = try f.fs.setattr(ino, SetAttrRequest(times: true))
        let snaps = try f.store.snapshots()
        XCTAssertEqual(snaps.count, 1)
        XCTAssertEqual(snaps.first?.format, .nativeIncremental)
        XCTAssertTrue(snaps.first.map { SnapshotName.isAutomatic($0.name) } ?? false)
        XCTAssertTrue(try f.names("").contains(snaps[0].name), "listed when touch returns")
        _ = try f.fs.setattr(ino, SetAttrRequest(times: true))
        XCTAssertEqual(try f.store.snapshots().count, 2)
        // The truncation of `>` alone (`: > trigger`) asks for nothing.
        _ = try f.fs.setattr(ino, SetAttrRequest(size: 0, times: true))
        XCTAssertEqual(try f.store.snapshots().count, 2)
    }

    func testBadOrDuplicateLabelFailsTheWriteAndTakesNothing() throws {
        let f = try Fixture()
        try f.write("x", "x")
        XCTAssertEqual(try f.echo("has space\n", to: "default")?.errno, EINVAL)
        XCTAssertEqual(try f.echo(".hidden\n", to: "default")?.errno, EINVAL)
        XCTAssertEqual(try f.echo("chk-7\n", to: "default")?.errno, EINVAL)
        XCTAssertEqual(try f.echo("a b", to: "default")?.errno, EINVAL, "without a newline the write's content is the label")
        XCTAssertEqual(try f.store.snapshots().count, 0)
        XCTAssertNil(try f.echo("taken\n", to: "native-full"))
        XCTAssertEqual(try f.echo("taken\n", to: "native-full")?.errno, EINVAL)
        XCTAssertEqual(try f.store.snapshots().map(\.name), ["taken"])
        XCTAssertTrue(try f.store.events().contains { $0.type == "refusal" && $0.detail.contains("has space") })
        XCTAssertNil(try f.echo("no-newline", to: "native-full"))
        XCTAssertEqual(try f.store.snapshots().map(\.name), ["taken", "no-newline"])
    }

    func testALabelInPiecesIsRefusedNotGuessed() throws {
        let f = try Fixture()
        try f.write("x", "x")
        XCTAssertNil(try f.echo("par", to: "default"))
        // The rest of the label, in a second write: the mount cannot tell it from a new request.
        let e = try XCTUnwrap(try f.echo("ignored", to: "default", offset: 3))
        XCTAssertEqual(e.errno, EINVAL)
        XCTAssertTrue(e.description.contains("one write at the start of the file"), e.description)
        XCTAssertEqual(try f.store.snapshots().map(\.name), ["par"])
        XCTAssertTrue(try f.store.events().contains { $0.type == "refusal" && $0.detail.contains("offset 3") })
    }

    func testEmptyLineTakesAnAutomaticNameAndReadingNeverTriggers() throws {
        let f = try Fixture()
        try f.write("x", "x")
        XCTAssertEqual(try f.read(".snapfs/trigger/default"), Data())
        XCTAssertEqual(try f.resolve(".snapfs/trigger/default").attr.size, 0)
        XCTAssertEqual(try f.store.snapshots().count, 0)
        XCTAssertNil(try f.echo("\n", to: "default"))
        XCTAssertEqual(try f.store.snapshots().count, 1)
        XCTAssertEqual(try f.resolve(".snapfs/trigger/default").attr.size, 0, "an append after it starts at 0 again")
    }

    func testUnknownTriggerDoesNotExist() throws {
        let f = try Fixture()
        XCTAssertFSError(try f.fs.create(parent: try f.ino(".snapfs/trigger"), name: "full"), ENOENT)
        XCTAssertFSError(try f.resolve(".snapfs/trigger/full"), ENOENT)
        XCTAssertEqual(try f.names(".snapfs/trigger"), ["canonical", "native-full", "native-incremental", "default"])
        XCTAssertEqual(try f.resolve(".snapfs/trigger/canonical").attr.mode & 0o7777, 0o600)
    }

    func testMkdirAtTheRootTakesASnapshotInTheDefaultFormat() throws {
        let f = try Fixture()
        try f.write("x", "x")
        let e = try f.fs.mkdir(parent: InodeNumber.root, name: "by-mkdir")
        XCTAssertTrue(e.attr.isDirectory)
        XCTAssertEqual(try f.store.snapshot(named: "by-mkdir").format, f.engine.defaultFormat)
        XCTAssertEqual(try f.store.snapshot(named: "by-mkdir").kind, .user)
        XCTAssertFSError(try f.fs.mkdir(parent: InodeNumber.root, name: "by-mkdir"), EEXIST)
        XCTAssertFSError(try f.fs.mkdir(parent: InodeNumber.root, name: "bad name"), EINVAL)
        XCTAssertEqual(try f.store.snapshots().count, 1)
    }
}

final class ControlTests: XCTestCase {
    func testControlFilesAndAttributes() throws {
        let f = try Fixture(running: true)
        try f.write("x", "x")
        let s = try f.snapshot(.nativeFull)
        let formats = try JSONSerialization.jsonObject(with: try f.read(".snapfs/formats")) as? [[String: Any]]
        XCTAssertEqual(formats?.count, 3)
        let report = try JSONSerialization.jsonObject(with: try f.read(".snapfs/snapshots/\(s.name).json")) as? [String: Any]
        XCTAssertEqual(report?["deletable"] as? Bool, false)
        XCTAssertEqual(report?["notDeletableBecause"] as? String, "recovery point: newer snapshot needed first")
        let status = try JSONSerialization.jsonObject(with: try f.read(".snapfs/status")) as? [String: Any]
        XCTAssertEqual(status?["recoveryPoint"] as? String, s.name)
        XCTAssertEqual(status?["engine"] as? String, "local", "the store's status and the mount's own fields are one object")
        XCTAssertNotNil(status?["stageWindowSeconds"] as? Double)
        XCTAssertEqual(try f.fs.readlink(try f.ino("latest")), s.name)
        XCTAssertNil(try f.echo("from-trigger\n", to: "native-full"))
        XCTAssertEqual(try f.names(".snapfs/requests"), ["1.json"])
        let req = try JSONSerialization.jsonObject(with: try f.read(".snapfs/requests/1.json")) as? [String: Any]
        XCTAssertEqual(req?["state"] as? String, "complete")
        let events = String(decoding: try f.read(".snapfs/events"), as: UTF8.self).split(separator: "\n")
        XCTAssertFalse(events.isEmpty)
        for line in events { XCTAssertNoThrow(try JSONSerialization.jsonObject(with: Data(line.utf8))) }

        let dir = try f.ino(s.name)
        XCTAssertFalse(try f.fs.listxattr(dir).contains("user.snapfs.format"), "answered by name, never listed: copies do not carry it")
        XCTAssertEqual(String(decoding: try f.fs.getxattr(dir, name: "user.snapfs.format"), as: UTF8.self), "native-full")
        XCTAssertEqual(String(decoding: try f.fs.getxattr(dir, name: "user.snapfs.id"), as: UTF8.self), String(s.id))
        XCTAssertFSError(try f.fs.getxattr(dir, name: "user.other"), ENODATA)
    }

    func testGeneratedContentShowsANewTimeExactlyWhenItChanges() throws {
        let f = try Fixture(running: false)
        try f.write("x", "x")
        let told = Mutex<[UInt64]>([])
        f.fs.setKernelNotifier { inodes in told.withLock { $0 += inodes } }
        // The status shows how many nodes the mount holds; the first lookup of the file adds its own.
        _ = try f.resolve(".snapfs/status")
        let status = try f.resolve(".snapfs/status").attr
        XCTAssertEqual(try f.resolve(".snapfs/status").attr.mtimeNanos, status.mtimeNanos, "unchanged, so the kernel keeps its pages")
        let root = try f.fs.getattr(InodeNumber.root), requests = try f.resolve(".snapfs/requests").attr
        XCTAssertEqual(try f.fs.getattr(InodeNumber.root).mtimeNanos, root.mtimeNanos)

        XCTAssertNil(try f.echo("t\n", to: "native-full"))
        XCTAssertTrue(told.withLock { $0 }.contains(InodeNumber.root), "the kernel is told before the write returns")
        let after = try f.resolve(".snapfs/status").attr
        XCTAssertGreaterThan(after.mtimeNanos, status.mtimeNanos, "the clock did not move; the content did")
        XCTAssertEqual(Int64(try f.read(".snapfs/status").count), after.size, "a read serves what the stat announced")
        XCTAssertGreaterThan(try f.fs.getattr(InodeNumber.root).mtimeNanos, root.mtimeNanos)
        XCTAssertGreaterThan(try f.resolve(".snapfs/requests").attr.mtimeNanos, requests.mtimeNanos)
    }

    func testCatalogChangesFromElsewhereAreReported() throws {
        let f = try Fixture(running: false)
        try f.write("x", "x")
        let a = try f.snapshot(.nativeFull)
        _ = f.fs.poll()
        XCTAssertTrue(try f.names("").contains(a.name))
        try f.store.rename(a.name, to: "elsewhere")
        let changes = f.fs.poll()
        XCTAssertTrue(changes.names.contains(a.name))
        XCTAssertTrue(changes.names.contains("elsewhere"))
        XCTAssertTrue(try f.names("").contains("elsewhere"))
        XCTAssertTrue(f.fs.poll().isEmpty)
    }
}
