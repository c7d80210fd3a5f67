import Foundation
@testable import SnapFileOps
import SnapStore
import XCTest

/// `user.snapfs.hold` on a snapshot's directory, without a kernel: who may set it, what it refuses, what it reads.
final class HoldXattrTests: XCTestCase {
    func testOnlyThoseWhoMayDeleteMayHoldAndAHoldRefusesRmdirAndRename() throws {
        let f = try Fixture()
        try f.write("a", "1")
        let s = try f.snapshot(.nativeFull)
        try f.write("a", "2")
        _ = try f.snapshot()
        let dir = try f.ino(s.name)
        let hold = SnapFileSystem.holdAttribute
        let stranger = Caller(uid: f.fs.options.uid &+ 4242, gid: f.fs.options.gid &+ 4242)

        XCTAssertFSError(try f.fs.setxattr(dir, name: hold, value: Array("mine".utf8), caller: stranger), EACCES)
        XCTAssertFalse(try f.fs.listxattr(dir).contains(hold))
        XCTAssertFSError(try f.fs.getxattr(dir, name: hold), ENODATA)

        try f.fs.setxattr(dir, name: hold, value: Array("keep for audit".utf8), caller: Caller(uid: f.fs.options.uid, gid: f.fs.options.gid))
        XCTAssertFalse(try f.fs.listxattr(dir).contains(hold), "answered by name, never listed")
        XCTAssertEqual(String(decoding: try f.fs.getxattr(dir, name: hold), as: UTF8.self), "keep for audit")
        XCTAssertFSError(try f.fs.rmdir(parent: InodeNumber.root, name: s.name), EBUSY)
        XCTAssertFSError(try f.fs.rename(parent: InodeNumber.root, name: s.name, newParent: InodeNumber.root, newName: "other", flags: 0), EBUSY)
        XCTAssertFSError(try f.fs.removexattr(dir, name: hold, caller: stranger), EACCES)
        XCTAssertEqual(try f.fs.store.hold(of: s.name)?.reason, "keep for audit")

        try f.fs.removexattr(dir, name: hold)
        XCTAssertFSError(try f.fs.removexattr(dir, name: hold), ENODATA)
        XCTAssertNoThrow(try f.fs.rmdir(parent: InodeNumber.root, name: s.name))
        let refusals = try f.fs.store.events().filter { $0.type == "refusal" }.map(\.detail)
        XCTAssertTrue(refusals.contains { $0.contains("by uid \(stranger.uid)") && $0.contains("holds are set and released by those who may delete snapshots") }, "\(refusals)")
        XCTAssertTrue(refusals.contains("delete refused: held: keep for audit"), "\(refusals)")
    }
}
