import Foundation
import LocalEngine
import SnapFileOps
import SnapStore
import XCTest

/// Lookup counts and FORGET, negative entries, and `..`, at the file-operation level.
final class LookupForgetTests: XCTestCase {
    func testForgetOfEveryLookupDropsTheNodeAndALaterLookupGetsItsNumberBack() throws {
        let f = try Fixture(running: false)
        try f.write("d/file", "content")
        let s = try f.snapshot(.nativeFull)
        let dir = try f.handle("\(s.name)/d")
        let before = f.fs.nodeCount

        var ino: UInt64 = 0
        for _ in 0..<5 { ino = try f.fs.lookup(parent: dir, name: "file").nodeID }
        XCTAssertEqual(f.fs.lookupCount(ino), 5)
        XCTAssertEqual(f.fs.nodeCount, before + 1, "five lookups of one name hold one node")

        f.fs.forget(ino, count: 3)
        XCTAssertEqual(f.fs.lookupCount(ino), 2)
        XCTAssertEqual(try f.fs.getattr(ino).size, 7, "a node the kernel still holds stays")

        f.fs.forget([(ino: ino, count: 2)])
        XCTAssertEqual(f.fs.lookupCount(ino), 0)
        XCTAssertEqual(f.fs.nodeCount, before)
        XCTAssertFSError(try f.fs.getattr(ino), ENOENT)

        let again = try f.fs.lookup(parent: dir, name: "file")
        XCTAssertEqual(again.nodeID, ino, "the number is the identity's, not a counter's")
        XCTAssertEqual(f.fs.lookupCount(ino), 1)
    }

    func testNodesStillHeldSurviveWhenMostOfALargeTableIsForgotten() throws {
        let f = try Fixture(running: false)
        for i in 0..<5000 { try f.write("d/f\(i)", "\(i)") }
        let s = try f.snapshot(.nativeFull)
        let dir = try f.handle("\(s.name)/d")
        let before = f.fs.nodeCount
        let inos = try (0..<5000).map { try f.fs.lookup(parent: dir, name: "f\($0)").nodeID }
        XCTAssertEqual(f.fs.nodeCount, before + 5000)
        // The kernel forgets all but every 500th, in batches as BATCH_FORGET brings them.
        let forgotten = inos.enumerated().filter { $0.offset % 500 != 0 }.map(\.element)
        for start in stride(from: 0, to: forgotten.count, by: 256) {
            f.fs.forget(forgotten[start..<min(start + 256, forgotten.count)].map { (ino: $0, count: UInt64(1)) })
        }
        XCTAssertEqual(f.fs.nodeCount, before + 10)
        for (i, ino) in inos.enumerated() {
            if i % 500 == 0 {
                XCTAssertEqual(try f.fs.getattr(ino).size, Int64("\(i)".utf8.count), "f\(i) is still held")
            } else if i % 97 == 0 {
                XCTAssertFSError(try f.fs.getattr(ino), ENOENT)
            }
        }
    }

    func testForgetOfAnUnknownNodeOrOfMoreThanWasLookedUpIsHarmless() throws {
        let f = try Fixture(running: false)
        try f.write("file", "x")
        let s = try f.snapshot(.nativeFull)
        let before = f.fs.nodeCount
        f.fs.forget(0xdead_beef_0000, count: 1)
        f.fs.forget([(ino: 0xdead_beef_0001, count: 7), (ino: InodeNumber.root, count: 3)])
        XCTAssertEqual(f.fs.nodeCount, before)
        XCTAssertEqual(try f.fs.getattr(InodeNumber.root).ino, InodeNumber.root, "the root resolves without being held")

        let file = try f.handle("\(s.name)/file")
        f.fs.forget(file, count: 10)
        XCTAssertEqual(f.fs.lookupCount(file), 0)
        XCTAssertFSError(try f.fs.getattr(file), ENOENT)
        XCTAssertEqual(try f.resolve("\(s.name)/file").attr.size, 1)
    }

    func testReaddirHoldsNoNodes() throws {
        let f = try Fixture(running: false)
        for i in 0..<50 { try f.write("many/f\(i)", "\(i)") }
        let s = try f.snapshot(.nativeFull)
        let dir = try f.handle("\(s.name)/many")
        let before = f.fs.nodeCount
        let listed = try f.fs.readdir(dir, offset: 0)
        XCTAssertEqual(listed.count, 52)
        XCTAssertEqual(f.fs.nodeCount, before, "a plain listing gives the kernel no references")
    }

    func testAMissInsideASnapshotIsKeptAndOneAtTheRootIsNot() throws {
        let f = try Fixture(running: false)
        try f.write("d/file", "x")
        let s = try f.snapshot(.nativeFull)
        let before = f.fs.nodeCount

        for path in [s.name, "\(s.name)/d"] {
            guard case .missing(let timeout) = try f.fs.resolve(parent: try f.handle(path), name: "absent") else {
                return XCTFail("absent found in \(path)")
            }
            XCTAssertEqual(timeout, f.fs.options.snapshotEntryTimeout, "a miss in \(path) stays a miss")
        }
        // A snapshot may appear at the root at any moment; so may requests and reports.
        for path in ["", ".snapfs", ".snapfs/requests", ".snapfs/snapshots"] {
            let dir = path.isEmpty ? InodeNumber.root : try f.handle(path)
            guard case .missing(let timeout) = try f.fs.resolve(parent: dir, name: "absent") else {
                return XCTFail("absent found in /\(path)")
            }
            XCTAssertEqual(timeout, 0, "a miss in /\(path) is not kept")
        }
        XCTAssertFSError(try f.fs.lookup(parent: InodeNumber.root, name: "absent"), ENOENT)
        XCTAssertEqual(f.fs.nodeCount, before + 5, "misses hold nothing (the five directories above hold their own)")
    }

    func testDotDotIsTheParentInLookupAndInListings() throws {
        let f = try Fixture(running: false)
        try f.write("a/b/file", "x")
        let s = try f.snapshot(.nativeFull)
        let pairs = [(s.name, ""), ("\(s.name)/a", s.name), ("\(s.name)/a/b", "\(s.name)/a"), (".snapfs", ""),
                     (".snapfs/trigger", ".snapfs")]
        for (dir, parent) in pairs {
            let expected = parent.isEmpty ? InodeNumber.root : try f.ino(parent)
            let up = try f.fs.lookup(parent: try f.handle(dir), name: "..")
            XCTAssertEqual(up.attr.ino, expected, "lookup of \(dir)/..")
            let listed = try f.fs.readdir(try f.handle(dir), offset: 0).first { $0.name == ".." }
            XCTAssertEqual(listed?.ino, expected, "readdir of \(dir) lists .. as its parent")
        }
        XCTAssertEqual(try f.fs.lookup(parent: InodeNumber.root, name: "..").attr.ino, InodeNumber.root)
    }

    func testAnEntryBackFromAStagedUnlinkIsAnnouncedToTheKernel() throws {
        let f = try Fixture(stageWindow: 5, running: false)
        try f.write("d/file", "x")
        let s = try f.snapshot(.nativeFull)
        let dir = try f.handle("\(s.name)/d")
        try f.fs.unlink(parent: dir, name: "file")
        guard case .missing(let t) = try f.fs.resolve(parent: dir, name: "file"), t > 0 else {
            return XCTFail("a staged entry is a kept miss")
        }
        _ = f.fs.poll()
        f.clock.advance(10)
        let changes = f.fs.poll()
        XCTAssertTrue(changes.entries.contains(ChangedEntry(parent: dir, name: "file")),
                      "the kernel is told to forget the miss it kept: \(changes.entries)")
        XCTAssertEqual(try f.fs.lookup(parent: dir, name: "file").attr.size, 1)
    }
}
