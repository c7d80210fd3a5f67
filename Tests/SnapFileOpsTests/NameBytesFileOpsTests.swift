import Foundation
import SnapFileOps
import SnapStore
import XCTest
#if canImport(Glibc)
import Glibc
#endif

final class NameBytesFileOpsTests: XCTestCase {
    /// readdir gives, and lookup takes, the name of a state file named with bytes 0xff 0xfe in the one String that
    /// maps back to exactly those bytes, whatever the format and wherever its bytes are stored.
    func testNonUTF8NameIsListedLookedUpAndReadInEveryFormat() throws {
        let f = try Fixture(running: false)
        defer { _ = try? FileManager.default.removeItem(at: f.root) }
        let bytes: [UInt8] = [0xFF, 0xFE]
        let fd = open(f.state.path + "/x", O_WRONLY | O_CREAT, 0o644)
        close(fd)
        let raw = f.state.path.utf8.map { CChar(bitPattern: $0) } + [CChar(bitPattern: 0x2F)] + bytes.map { CChar(bitPattern: $0) } + [0]
        let file = open(raw, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        XCTAssertGreaterThanOrEqual(file, 0)
        XCTAssertEqual(write(file, "bytes", 5), 5)
        close(file)
        XCTAssertEqual(symlink(bytes.map { CChar(bitPattern: $0) } + [0], f.state.path + "/link"), 0)
        let name = PathBytes.string(kernel: bytes)
        for format in SnapshotFormat.allCases {
            let s = try f.snapshot(format)
            XCTAssertEqual(Set(try f.names(s.name)), ["x", "link", name], format.rawValue)
            XCTAssertEqual(PathBytes.kernel(try f.names(s.name).first { $0 != "x" && $0 != "link" }!), bytes)
            let e = try f.fs.lookup(parent: try f.ino(s.name), name: name)
            XCTAssertEqual(e.attr.size, 5)
            XCTAssertEqual(try f.read("\(s.name)/\(name)"), Data("bytes".utf8))
            XCTAssertEqual(PathBytes.kernel(try f.fs.readlink(try f.ino("\(s.name)/link"))), bytes)
            XCTAssertEqual(try f.resolve("\(s.name)/link").attr.size, 2, "a link's size is its target's bytes, as lstat says")
            XCTAssertThrowsError(try f.fs.lookup(parent: try f.ino(s.name), name: "\u{FFFD}\u{FFFD}"), "the lossy name is not there")
        }
    }
}
