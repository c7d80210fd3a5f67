import Foundation
@testable import SnapFileOps
import SnapStore
import XCTest

/// The mount is never told when a file is closed, so descriptors of stored objects must be bounded by the cache
/// itself, and a descriptor in use must never be closed under a read.
final class ObjectDescriptorTests: XCTestCase {
    func testIdleDescriptorsAreBoundedAndEveryReadGetsItsOwnBytes() throws {
        let f = try Fixture()
        for i in 0..<40 { try f.write("d/file-\(i)", "content of file \(i)") }
        let s = try f.snapshot(.nativeFull)
        let entries = try f.store.entries(of: s.id).filter { $0.type == .file }
        XCTAssertEqual(entries.count, 40)
        let cache = ObjectDescriptors(root: f.store.root.path, idleLimit: 8)
        for e in entries {
            let bytes = try cache.withDescriptor(try XCTUnwrap(e.objectPath), covering: wholeObject) { fd throws(FSError) -> [UInt8] in
                var b = [UInt8](repeating: 0, count: 64)
                let n = b.withUnsafeMutableBytes { pread(fd, $0.baseAddress, 64, 0) }
                return Array(b.prefix(max(n, 0)))
            }
            XCTAssertEqual(String(decoding: bytes, as: UTF8.self), "content of \(e.path.split(separator: "/").last!.replacingOccurrences(of: "-", with: " "))")
            XCTAssertLessThanOrEqual(cache.openCount, 9, "idle descriptors beyond the limit are closed")
        }

        // A descriptor leased by one read stays open while others come and go past the limit.
        // (Were it closed, its number would be reused by the next open, and the read would return another file.)
        let first = try XCTUnwrap(entries[0].objectPath)
        let want = try Data(contentsOf: f.store.root.appendingPathComponent(first))
        try cache.withDescriptor(first, covering: 0..<0) { fd throws(FSError) in
            for e in entries.dropFirst() { _ = try cache.withDescriptor(e.objectPath!, covering: 0..<0) { _ throws(FSError) in 0 } }
            var b = [UInt8](repeating: 0, count: 64)
            let n = b.withUnsafeMutableBytes { pread(fd, $0.baseAddress, 64, 0) }
            XCTAssertEqual(Data(b.prefix(max(n, 0))), want, "the leased descriptor still reads its own object")
        }
    }
}
