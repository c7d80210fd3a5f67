import FlinkFixtures
import FlinkMetadata
import FlinkMetadataWriter
import Foundation
import XCTest

/// Repairs of relative handles that Flink resolves to the wrong directory (FLINK-39964), on real savepoints.
final class RepairPlanTests: XCTestCase {
    private let store1 = FlinkFixtures.directory.appendingPathComponent("store-1").path
    private let canonical = "savepoints/savepoint-c4f302-a3c72ffbb47e"
    private let nativeDamaged = "savepoints/savepoint-c4f302-ffe50290a9b7"

    private func size(_ path: String) -> Int64? {
        (try? FileManager.default.attributesOfItem(atPath: path))?[.size] as? Int64
    }

    private func read(_ dir: String) throws -> CheckpointMetadata {
        try MetadataReader.read(Data(contentsOf: URL(fileURLWithPath: store1 + "/" + dir + "/_metadata")))
    }

    /// A real savepoint's `_metadata` read as if it were in another directory (as a CLAIM-restored job's
    /// checkpoint holds it): every relative file is missing there, found in the savepoint's directory, and the
    /// repaired file names each by its absolute path, which resolves to the real file from any directory.
    func testMisplacedRelativeHandlesAreNamedWhereTheFilesAre() throws {
        let savepoint = try read(canonical)
        var relative = 0
        savepoint.visitHandles { if case .relativeFile = $0 { relative += 1 } }
        XCTAssertGreaterThan(relative, 0)
        let wrongDirectory = "/nonexistent/chk-13"
        let plan = try RepairPlan.make(
            savepoint, metadataDirectory: wrongDirectory, searchDirectories: ["/nonexistent/other", store1 + "/" + canonical],
            fileSize: size)
        XCTAssertEqual(plan.missing, [])
        XCTAssertEqual(plan.fixes.count, relative)
        XCTAssertTrue(plan.fixes.allSatisfy { $0.resolvedPath.hasPrefix(wrongDirectory + "/") && $0.foundAt.hasPrefix(store1 + "/" + canonical + "/") })
        let repaired = try MetadataReader.read(try XCTUnwrap(plan.metadata))
        XCTAssertEqual(repaired.version, savepoint.version)
        let files = repaired.referencedFiles(metadataDirectory: wrongDirectory, pathMap: .identity)
        XCTAssertEqual(
            Set(files), Set(savepoint.referencedFiles(metadataDirectory: store1 + "/" + canonical, pathMap: .identity)),
            "the repaired snapshot needs the same files, wherever its _metadata is")
        for file in files { XCTAssertEqual(size(file.path), file.size, file.path) }
        // Nothing to do where the files already are.
        let inPlace = try RepairPlan.make(
            savepoint, metadataDirectory: store1 + "/" + canonical, searchDirectories: [], fileSize: size)
        XCTAssertEqual(inPlace.fixes, [])
        XCTAssertNil(inPlace.metadata)
    }

    /// A savepoint whose files Flink deleted (store-1's claimed NATIVE savepoint): the repair is refused and the
    /// plan names every file that is gone.
    func testGoneFilesRefuseTheRepairAndAreNamed() throws {
        let damaged = try read(nativeDamaged)
        let directory = store1 + "/" + nativeDamaged
        let plan = try RepairPlan.make(
            damaged, metadataDirectory: directory, searchDirectories: [store1 + "/" + canonical], fileSize: size)
        XCTAssertNil(plan.metadata)
        XCTAssertEqual(plan.missing.count, 14, "the fixture README: 14 of its 16 files are gone")
        for file in plan.missing { XCTAssertNil(size(file.path), file.path) }
    }

    /// A file of the wrong length is not the file the handle meant.
    func testAFileOfTheWrongLengthIsNotAMatch() throws {
        let savepoint = try read(canonical)
        let plan = try RepairPlan.make(
            savepoint, metadataDirectory: "/nonexistent/chk-13", searchDirectories: [store1 + "/" + canonical],
            fileSize: { path in self.size(path).map { $0 + 1 } })
        XCTAssertNil(plan.metadata)
        XCTAssertFalse(plan.missing.isEmpty)
        XCTAssertEqual(plan.fixes, [])
    }
}
