import Foundation
import SnapFileOps
import SnapStore
import XCTest

/// Shows each stored file of a snapshot as two files made of its two halves (`objectOffset`), as an engine's view
/// shows a Flink file-merging segment as a file of its own: no Flink involved.
final class HalvesPresenter: SnapshotPresenter {
    func view(of snapshot: Snapshot, entries: [SnapshotEntry]) -> SnapshotView? {
        var shown: [SnapshotEntry] = []
        for e in entries where e.type == .file {
            let half = e.size / 2
            for (suffix, offset, size) in [("head", Int64(0), half), ("tail", half, e.size - half)] {
                var part = e
                part.path = e.path + "." + suffix
                part.objectOffset = offset
                part.size = size
                part.requiredSize = size
                part.links = 1
                part.blocks = nil
                shown.append(part)
            }
        }
        return SnapshotView(layout: "halves", detail: nil, entries: shown)
    }
}

/// A file of a view made of a byte range of a stored file: its length before any read, its bytes at any offset,
/// an inode of its own, all data to SEEK_DATA/SEEK_HOLE, and never handed to the kernel as the whole object.
final class ObjectRangeTests: XCTestCase {
    func testAFileMadeOfARangeOfAStoredFileReadsThatRangeOnly() throws {
        let f = try Fixture()
        let content = Data((0..<20_001).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ $0 / 256) })
        let url = f.state.appendingPathComponent("big.bin")
        try content.write(to: url)
        try f.write("small.txt", "hello, ranges")
        let s = try f.snapshot(label: "s1")
        f.fs.setPresenter(HalvesPresenter())
        XCTAssertEqual(Set(try f.names("s1")), ["big.bin.head", "big.bin.tail", "small.txt.head", "small.txt.tail"])

        // Lengths at the first stat, before any read.
        XCTAssertEqual(try f.resolve("s1/big.bin.head").attr.size, 10_000)
        XCTAssertEqual(try f.resolve("s1/big.bin.tail").attr.size, 10_001)
        XCTAssertEqual(try f.resolve("s1/small.txt.tail").attr.size, 7)
        // Bytes: read from offset 0 on, in chunks (the helper reads 7000 at a time), as the kernel does.
        XCTAssertEqual(try f.read("s1/big.bin.head"), content.subdata(in: 0..<10_000))
        XCTAssertEqual(try f.read("s1/big.bin.tail"), content.subdata(in: 10_000..<20_001))
        XCTAssertEqual(String(decoding: try f.read("s1/small.txt.tail"), as: UTF8.self), " ranges")
        // A read from inside the range, and one running past its end, stop at the range's end.
        let tail = try f.handle("s1/big.bin.tail")
        var buf = [UInt8](repeating: 0, count: 50)
        let n = try buf.withUnsafeMutableBytes { try f.fs.read(tail, offset: 9_990, into: $0) }
        XCTAssertEqual(n, 11)
        XCTAssertEqual(Data(buf[0..<n]), content.subdata(in: 19_990..<20_001))
        XCTAssertEqual(try buf.withUnsafeMutableBytes { try f.fs.read(tail, offset: 10_001, into: $0) }, 0)
        let head = try f.handle("s1/big.bin.head")
        let m = try buf.withUnsafeMutableBytes { try f.fs.read(head, offset: 9_980, into: $0) }
        XCTAssertEqual(Data(buf[0..<m]), content.subdata(in: 9_980..<10_000), "the head ends where the tail begins")

        // Each part an inode of its own; never spliced as the whole object.
        XCTAssertNotEqual(try f.ino("s1/big.bin.head"), try f.ino("s1/big.bin.tail"))
        XCTAssertNil(try f.fs.withObjectDescriptor(head, range: 0..<20) { _ in () })
        // All data, as far as the range goes.
        XCTAssertEqual(try f.fs.seek(tail, offset: 5, whence: 3), 5)
        XCTAssertEqual(try f.fs.seek(tail, offset: 5, whence: 4), 10_001)
        XCTAssertFSError(try f.fs.seek(tail, offset: 10_001, whence: 3), ENXIO)
        XCTAssertEqual(try f.store.snapshot(named: "s1").id, s.id)
    }
}
