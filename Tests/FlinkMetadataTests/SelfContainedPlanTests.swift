import FlinkMetadata
import FlinkMetadataWriter
import Foundation
import XCTest

/// The plan for a self-contained copy: names for every file, and the `_metadata` that finds them there.
final class SelfContainedPlanTests: XCTestCase {
    /// Every fixture snapshot without file-merging segments: the plan's `_metadata`, read in any directory,
    /// names exactly the planned copies there, with the sizes the original needed, and no absolute path.
    func testEveryPlanNamesItsCopiesRelativeToTheNewDirectory() throws {
        var planned = 0
        var refused = 0
        for file in try WriterTests.allFixtureFiles() {
            let directory = String(file.path.dropLast("/_metadata".count))
            let original = try MetadataReader.read(file.bytes)
            let needed = original.referencedFiles(metadataDirectory: directory, pathMap: .identity)
            if needed.contains(where: { $0.kind == .mergedSegments }) {
                XCTAssertThrowsError(try SelfContainedPlan.make(original, metadataDirectory: directory)) { error in
                    XCTAssertTrue("\(error)".contains("segments"), "\(error)")
                }
                refused += 1
                continue
            }
            let plan = try SelfContainedPlan.make(original, metadataDirectory: directory)
            XCTAssertEqual(plan.rewrite.unmappedFiles, [])
            XCTAssertEqual(Set(plan.copies.map(\.source)), Set(needed.map(\.path)), file.path)
            XCTAssertFalse(plan.copies.contains { $0.relativePath == "_metadata" || $0.relativePath.contains("/") })
            // Distinct sources never share a name.
            var owner: [String: String] = [:]
            for copy in plan.copies {
                XCTAssertEqual(owner[copy.relativePath, default: copy.source], copy.source, "\(file.path): \(copy.relativePath)")
                owner[copy.relativePath] = copy.source
            }
            let copy = try MetadataReader.read(plan.metadata)
            XCTAssertEqual(copy.version, original.version)
            let there = "/elsewhere/copy"
            let expected = Set(plan.copies.map { FileReference(path: there + "/" + $0.relativePath, size: $0.size, kind: $0.kind) })
            XCTAssertEqual(Set(copy.referencedFiles(metadataDirectory: there, pathMap: .identity)), expected, file.path)
            var absolute = 0
            copy.visitHandles { if case .file = $0 { absolute += 1 } }
            XCTAssertEqual(absolute, 0, file.path)
            planned += 1
        }
        XCTAssertGreaterThan(planned, 40)
        XCTAssertGreaterThan(refused, 0, "the file-merging fixtures are refused, not half converted")
        print("self-contained plans: \(planned) snapshots planned, \(refused) with file-merging segments refused")
    }

    /// Two files of one name (the same SST name in two jobs' shared directories) get two names.
    func testSameNamedFilesFromTwoDirectoriesGetDistinctNames() throws {
        var metadata = try MetadataReader.read(try WriterTests.legacySynthetic())
        // The legacy synthetic names file:/srv/x/shared/meta; point the nested key-groups file at another "meta".
        guard case .changelog(var changelog)? = metadata.operators[0].subtasks[0].managedKeyedState,
              case .keyGroups(var keyGroups) = changelog.materialized[1] else { return XCTFail() }
        keyGroups.delegate = .keyGroups({ () -> KeyGroupsHandle in
            guard case .keyGroups(var inner)? = keyGroups.delegate else { fatalError() }
            inner.delegate = .file(path: "file:/srv/y/shared/meta", size: 4)
            return inner
        }())
        changelog.materialized[1] = .keyGroups(keyGroups)
        metadata.operators[0].subtasks[0].managedKeyedState = .changelog(changelog)
        let plan = try SelfContainedPlan.make(metadata, metadataDirectory: "/srv/x/chk-42")
        let names = Dictionary(uniqueKeysWithValues: plan.copies.map { ($0.source, $0.relativePath) })
        XCTAssertEqual(names["/srv/x/shared/meta"], "meta")
        XCTAssertEqual(names["/srv/y/shared/meta"], "1-meta")
        let copy = try MetadataReader.read(plan.metadata)
        let paths = Set(copy.referencedFiles(metadataDirectory: "/c", pathMap: .identity).map(\.path))
        XCTAssertTrue(paths.isSuperset(of: ["/c/meta", "/c/1-meta"]), "\(paths)")
    }
}

extension SelfContainedPlanTests {
    /// Absolute naming: the same copies, named by absolute path in the new directory (CLAIM-safe on Flink 2.3.0).
    func testAbsoluteNamingPointsIntoTheNewDirectory() throws {
        let file = try XCTUnwrap(try WriterTests.allFixtureFiles().first { $0.path.contains("store-1/checkpoints") })
        let directory = String(file.path.dropLast("/_metadata".count))
        let original = try MetadataReader.read(file.bytes)
        let plan = try SelfContainedPlan.make(original, metadataDirectory: directory, naming: .absolute(directory: "/archive/S"))
        let copy = try MetadataReader.read(plan.metadata)
        var relative = 0
        var absolute: [String] = []
        copy.visitHandles { handle in
            if case .relativeFile = handle { relative += 1 }
            if case .file(let path, _) = handle { absolute.append(path) }
        }
        XCTAssertEqual(relative, 0)
        XCTAssertFalse(absolute.isEmpty)
        XCTAssertTrue(absolute.allSatisfy { $0.hasPrefix("file:/archive/S/") }, "\(absolute)")
        // Wherever the _metadata is read, the files are where the plan put them.
        let expected = Set(plan.copies.map { FileReference(path: "/archive/S/" + $0.relativePath, size: $0.size, kind: $0.kind) })
        XCTAssertEqual(Set(copy.referencedFiles(metadataDirectory: "/anywhere", pathMap: .identity)), expected)
    }
}
