import FlinkMetadata
import FlinkFixtures
import Foundation
import XCTest

/// The reader against Flink's own deserializer, on every snapshot of two real stores.
final class FixtureComparisonTests: XCTestCase {
    func testStore1MatchesFlinksOwnReferences() throws { try compare(store: 1) }
    func testStore2MatchesFlinksOwnReferences() throws { try compare(store: 2) }

    /// For each snapshot in the truth file: same id, operators, subtasks, inline handles and bytes,
    /// and exactly the same set of files and sizes after resolution and path mapping. Every
    /// `_metadata` in the store must be in the truth file, so none is skipped silently.
    private func compare(store: Int) throws {
        let root = FlinkFixtures.directory.appendingPathComponent("store-\(store)").path
        let truth = try FlinkFixtures.truth(store: store, root: root)
        XCTAssertFalse(truth.isEmpty)
        let map = PathMap([(from: FlinkFixtures.writtenAt, to: root)])
        var compared = 0
        for expected in truth {
            let dir = root + "/" + expected.directory
            let data = try Data(contentsOf: URL(fileURLWithPath: dir + "/_metadata"))
            let metadata = try MetadataReader.read(data)
            XCTAssertEqual(metadata.version, 6, expected.directory)
            XCTAssertEqual(metadata.checkpointId, expected.checkpointId, expected.directory)
            XCTAssertEqual(metadata.operators.count, expected.operators, expected.directory)
            XCTAssertEqual(metadata.subtaskCount, expected.subtasks, expected.directory)
            XCTAssertEqual(metadata.inlineHandleCount, expected.inline, expected.directory)
            XCTAssertEqual(metadata.inlineBytes, expected.inlineBytes, expected.directory)
            XCTAssertEqual(metadata.trailingByteCount, 0, expected.directory)
            XCTAssertNotNil(metadata.properties?.decoded, expected.directory)
            let files = Set(metadata.referencedFiles(metadataDirectory: dir, pathMap: map).map { "\($0.path)\t\($0.size)" })
            XCTAssertEqual(files, expected.files, "file set of \(expected.directory)")
            compared += 1
        }
        let onDisk = try metadataDirectories(under: root)
        XCTAssertEqual(onDisk, Set(truth.map(\.directory)), "every _metadata in store-\(store) is in the truth file")
        print("store-\(store): \(compared) snapshots compared, \(truth.reduce(0) { $0 + $1.files.count }) file references equal")
    }

    /// Savepoints say which format they are; checkpoints say whether they were incremental.
    func testPropertiesTellSavepointFormatAndCheckpointType() throws {
        let root = FlinkFixtures.directory.appendingPathComponent("store-1").path
        func properties(_ dir: String) throws -> CheckpointProperties? {
            try MetadataReader.read(Data(contentsOf: URL(fileURLWithPath: root + "/" + dir + "/_metadata"))).properties?.decoded
        }
        let canonical = try XCTUnwrap(try properties("savepoints/savepoint-c4f302-a3c72ffbb47e"))
        guard case .savepoint(_, .canonical, _) = canonical.snapshotType else { return XCTFail("\(canonical.snapshotType)") }
        let native = try XCTUnwrap(try properties("savepoints/savepoint-c4f302-ffe50290a9b7"))
        guard case .savepoint(_, .native, _) = native.snapshotType else { return XCTFail("\(native.snapshotType)") }
        let checkpoint = try XCTUnwrap(try properties("checkpoints/c4f302458e6451f29e233030dfe8535c/chk-13"))
        guard case .checkpoint(_, .forwardBackward) = checkpoint.snapshotType else { return XCTFail("\(checkpoint.snapshotType)") }
        XCTAssertFalse(checkpoint.isSavepoint)
        XCTAssertFalse(checkpoint.discardCancelled, "the fixtures retain checkpoints on cancellation")
    }

    /// Inline state names look like paths but are not files: none of them may be reported.
    func testInlineHandlesAreNotFiles() throws {
        let root = FlinkFixtures.directory.appendingPathComponent("store-1").path
        let dir = root + "/checkpoints/c4f302458e6451f29e233030dfe8535c/chk-12"
        let metadata = try MetadataReader.read(Data(contentsOf: URL(fileURLWithPath: dir + "/_metadata")))
        var inlineNames: [String] = []
        metadata.visitHandles { if case .byteStream(let name, _) = $0 { inlineNames.append(name) } }
        XCTAssertFalse(inlineNames.isEmpty)
        let files = Set(metadata.referencedFiles(metadataDirectory: dir, pathMap: .identity).map(\.path))
        for name in inlineNames {
            XCTAssertFalse(files.contains(PathMap.identity.map(name)), name)
        }
    }

    private func metadataDirectories(under root: String) throws -> Set<String> {
        var out = Set<String>()
        guard let walker = FileManager.default.enumerator(atPath: root) else { return out }
        while let rel = walker.nextObject() as? String {
            if rel.hasSuffix("/_metadata") { out.insert(String(rel.dropLast("/_metadata".count))) }
        }
        return out
    }
}
