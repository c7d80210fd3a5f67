import Foundation
import SnapFileOps
import SnapStore
import XCTest

/// A file recorded with the rule `atLeast` (a Flink changelog file, one byte longer than its handle; a
/// file-merging physical file other snapshots append to) is served at its own length with every byte, never cut
/// to the length the snapshot needs.
final class SizeRuleTests: XCTestCase {
    func testAtLeastFileIsServedWholeAndFollowsItsGrowth() throws {
        let f = try Fixture()
        let relative = "adopted/changelog-1"
        let url = f.store.root.appendingPathComponent(relative)
        try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        let content = Data((0..<1001).map { UInt8(truncatingIfNeeded: $0 &* 7) })
        try content.write(to: url)

        let pending = try f.store.beginSnapshot(label: "adopted", kind: .checkpoint, format: .nativeIncremental)
        let ids = try pending.adoptObjects([(relative, 1001)])
        _ = try pending.commit(entries: [
            NewEntry(path: "changelog-1", type: .file, size: 1001, mode: 0o100644, mtimeNanos: 0, object: ids[0],
                     sizeRule: .atLeast, requiredSize: 1000),
        ], checksums: [:])
        _ = f.fs.refresh()

        let entry = try XCTUnwrap(try f.store.entries(of: try f.store.snapshot(named: "adopted").id).first)
        XCTAssertEqual(entry.sizeRule, .atLeast)
        XCTAssertEqual(entry.requiredSize, 1000)
        XCTAssertEqual(try f.resolve("adopted/changelog-1").attr.size, 1001)
        XCTAssertEqual(try f.read("adopted/changelog-1"), content)

        // Another snapshot's segments appended to the same physical file: served too.
        let handle = try FileHandle(forWritingTo: url)
        try handle.seekToEnd()
        try handle.write(contentsOf: Data([1, 2, 3]))
        try handle.close()
        XCTAssertEqual(try f.resolve("adopted/changelog-1").attr.size, 1004)
        XCTAssertEqual(try f.read("adopted/changelog-1"), content + Data([1, 2, 3]))
    }
}
