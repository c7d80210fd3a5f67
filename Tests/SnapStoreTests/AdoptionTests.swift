import Foundation
import SnapStore
import XCTest

/// Engines whose snapshots someone else wrote (Flink) hand the store files it did not create: a failed or
/// interrupted import must never remove them.
final class AdoptionTests: XCTestCase {
    func testRolledBackAdoptionTouchesNoFile() throws {
        let w = try Workspace()
        let dir = w.storeURL.appendingPathComponent("job/chk-7")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        try Data("meta".utf8).write(to: dir.appendingPathComponent("_metadata"))
        try Data("shared".utf8).write(to: w.storeURL.appendingPathComponent("job/shared-1"))

        let pending = try w.store.beginSnapshot(label: "job-chk-7", kind: .checkpoint, format: .nativeIncremental)
        _ = try pending.adoptObjects([("job/chk-7/_metadata", 4), ("job/shared-1", 6)])
        pending.abort("import failed")

        XCTAssertTrue(FileManager.default.fileExists(atPath: dir.appendingPathComponent("_metadata").path))
        XCTAssertTrue(FileManager.default.fileExists(atPath: w.storeURL.appendingPathComponent("job/shared-1").path))
        XCTAssertThrowsError(try w.store.snapshot(named: "job-chk-7"))

        // The same files can be adopted again, and then a checked delete removes them with the snapshot.
        let again = try w.store.beginSnapshot(label: "job-chk-7", kind: .checkpoint, format: .nativeIncremental)
        let ids = try again.adoptObjects([("job/chk-7/_metadata", 4)])
        _ = try again.commit(entries: [NewEntry(path: "job/chk-7/_metadata", type: .file, size: 4, mode: 0o100644, mtimeNanos: 0, object: ids[0])],
                             checksums: [:], adoptedDirectory: "job/chk-7")
        try w.write("x", "newer")
        _ = try w.snapshot()
        _ = try w.store.delete("job-chk-7")
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir.path), "the adopted directory goes with its snapshot")
        XCTAssertTrue(FileManager.default.fileExists(atPath: w.storeURL.appendingPathComponent("job/shared-1").path),
                      "a file no snapshot adopted is not the store's to remove")
    }
}
