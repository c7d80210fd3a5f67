import FlinkMetadata
import FlinkFixtures
import FlinkMetadataWriter
import Foundation
import XCTest

/// The plan for a self-contained copy: names for every file, and the `_metadata` that finds them there.
final class SelfContainedPlanTests: XCTestCase {
    /// Every fixture snapshot, file-merging ones included: the plan's `_metadata`, read in any directory, names
    /// exactly the planned copies there, with the sizes the original needed (a segment's copy exactly its length),
    /// and no absolute path, no segment and no file-merging directory.
    func testEveryPlanNamesItsCopiesRelativeToTheNewDirectory() throws {
        var planned = 0
        var merged = 0
        for file in try WriterTests.allFixtureFiles() {
            let directory = String(file.path.dropLast("/_metadata".count))
            let original = try MetadataReader.read(file.bytes)
            let needed = original.referencedFiles(metadataDirectory: directory, pathMap: .identity)
            let plan = try SelfContainedPlan.make(original, metadataDirectory: directory)
            XCTAssertEqual(plan.rewrite.unmappedFiles, [])
            XCTAssertEqual(Set(plan.copies.map(\.source)), Set(needed.map(\.path)), file.path)
            XCTAssertFalse(plan.copies.contains { $0.relativePath == "_metadata" || $0.relativePath.contains("/") })
            // Distinct sources (or segments) never share a name.
            var owner: [String: String] = [:]
            for copy in plan.copies {
                let what = copy.source + (copy.offset.map { "@\($0)+\(copy.size)" } ?? "")
                XCTAssertEqual(owner[copy.relativePath, default: what], what, "\(file.path): \(copy.relativePath)")
                owner[copy.relativePath] = what
            }
            let copy = try MetadataReader.read(plan.metadata)
            XCTAssertEqual(copy.version, original.version)
            let there = "/elsewhere/copy"
            let expected = Set(plan.copies.map { FileReference(path: there + "/" + $0.relativePath, size: $0.size, kind: $0.copiedKind) })
            XCTAssertEqual(Set(copy.referencedFiles(metadataDirectory: there, pathMap: .identity)), expected, file.path)
            var absolute = 0, segments = 0, mergedOperators = 0
            copy.visitHandles {
                switch $0 {
                case .file: absolute += 1
                case .fileSegment, .emptyFileSegment: segments += 1
                case .operatorState(let state) where state.fileMerging != nil: mergedOperators += 1
                default: break
                }
            }
            XCTAssertEqual(absolute, 0, file.path)
            XCTAssertEqual(segments, 0, file.path)
            XCTAssertEqual(mergedOperators, 0, file.path)
            if needed.contains(where: { $0.kind == .mergedSegments }) { merged += 1 }
            planned += 1
        }
        XCTAssertEqual(planned, 61)
        XCTAssertGreaterThan(merged, 5, "the file-merging fixtures are planned too")
        print("self-contained plans: \(planned) snapshots planned, \(merged) of them with file-merging segments")
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

extension SelfContainedPlanTests {
    /// The file-merging store (real Flink 2.3.0): each plan written out for real, every file handle of the new
    /// `_metadata`, in order, is relative and reads exactly the bytes its counterpart in the original read: a
    /// segment's range of the physical file, or a whole file. Two handles naming one segment share one copy.
    func testFileMergingSegmentsAreCopiedAsFilesOfTheirOwn() throws {
        let root = LayoutFixtures.directory.path + "/file-merging"
        let map = PathMap([(from: LayoutFixtures.writtenAt("file-merging"), to: root)])
        let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("plan-merging-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: scratch) }
        var checkedSnapshots = 0, checkedHandles = 0, segmentCopies = 0, segmentHandles = 0
        for snapshot in try LayoutFixtures.truth("file-merging") where snapshot.restorable {
            let directory = root + "/" + snapshot.directory
            let original = try MetadataReader.read([UInt8](try Data(contentsOf: URL(fileURLWithPath: directory + "/_metadata"))))
            let plan = try SelfContainedPlan.make(original, metadataDirectory: directory, pathMap: map)
            let target = scratch + "/\(checkedSnapshots)"
            try FileManager.default.createDirectory(atPath: target, withIntermediateDirectories: true)
            var written = Set<String>()
            for copy in plan.copies where written.insert(copy.relativePath).inserted { try copy.write(to: target + "/" + copy.relativePath) }
            try Data(plan.metadata).write(to: URL(fileURLWithPath: target + "/_metadata"))

            let before = Self.fileHandles(original), after = Self.fileHandles(try MetadataReader.read(plan.metadata))
            XCTAssertEqual(before.count, after.count, snapshot.directory)
            for (old, new) in zip(before, after) {
                guard case .relativeFile(let relative, let size) = new else { XCTFail("\(snapshot.directory): \(new)"); continue }
                let copied = try Data(contentsOf: URL(fileURLWithPath: target + "/" + relative))
                XCTAssertEqual(Int64(copied.count), size, relative)
                let path = try XCTUnwrap(old.resolvedFilePath(metadataDirectory: directory, pathMap: map))
                let source = try Data(contentsOf: URL(fileURLWithPath: path))
                if case .fileSegment(let segment) = old {
                    segmentHandles += 1
                    XCTAssertEqual(size, segment.size)
                    XCTAssertEqual(copied, source.subdata(in: Int(segment.startPosition)..<Int(segment.startPosition + segment.size)), relative)
                } else {
                    XCTAssertEqual(copied, source, relative)
                }
                checkedHandles += 1
            }
            // One copy per distinct segment, however many handles name it.
            var segments = Set<SegmentKey>()
            original.visitHandles { handle in
                if case .fileSegment(let s) = handle, let p = handle.resolvedFilePath(metadataDirectory: directory, pathMap: map) {
                    segments.insert(SegmentKey(path: p, start: s.startPosition, size: s.size))
                }
            }
            let copies = Set(plan.copies.filter { $0.offset != nil }.map(\.relativePath))
            XCTAssertEqual(copies.count, segments.count, snapshot.directory)
            segmentCopies += copies.count
            checkedSnapshots += 1
        }
        XCTAssertGreaterThanOrEqual(checkedSnapshots, 5)
        XCTAssertGreaterThanOrEqual(segmentHandles, segmentCopies)
        XCTAssertGreaterThan(segmentCopies, 100)
        print("file-merging plans: \(checkedSnapshots) snapshots written out, \(checkedHandles) handles read back, \(segmentHandles) segment handles over \(segmentCopies) segment files")
    }

    /// Two handles naming one segment (here: a real snapshot's second shared file pointed at its first) share one
    /// copy and one name.
    func testTwoHandlesOfOneSegmentShareOneCopy() throws {
        let root = LayoutFixtures.directory.path + "/file-merging"
        let snapshot = try XCTUnwrap(try LayoutFixtures.truth("file-merging").first { $0.restorable && $0.directory.contains("/chk-") && !$0.directory.contains("076e33") })
        let directory = root + "/" + snapshot.directory
        var metadata = try MetadataReader.read([UInt8](try Data(contentsOf: URL(fileURLWithPath: directory + "/_metadata"))))
        var done = false
        for o in metadata.operators.indices where !done {
            for s in metadata.operators[o].subtasks.indices where !done {
                guard case .incrementalRemote(var incremental)? = metadata.operators[o].subtasks[s].managedKeyedState,
                      incremental.sharedState.count >= 2 else { continue }
                incremental.sharedState[1].handle = incremental.sharedState[0].handle
                metadata.operators[o].subtasks[s].managedKeyedState = .incrementalRemote(incremental)
                done = true
            }
        }
        XCTAssertTrue(done, "a keyed handle with two shared files")
        let before = try SelfContainedPlan.make(try MetadataReader.read([UInt8](try Data(contentsOf: URL(fileURLWithPath: directory + "/_metadata")))), metadataDirectory: directory)
        let plan = try SelfContainedPlan.make(metadata, metadataDirectory: directory)
        XCTAssertEqual(Set(plan.copies.map(\.relativePath)).count, Set(before.copies.map(\.relativePath)).count - 1)
        let copy = try MetadataReader.read(plan.metadata)
        var names: [String] = []
        for operatorState in copy.operators {
            for subtask in operatorState.subtasks {
                guard case .incrementalRemote(let incremental)? = subtask.managedKeyedState, incremental.sharedState.count >= 2,
                      case .relativeFile(let a, _)? = incremental.sharedState[0].handle,
                      case .relativeFile(let b, _)? = incremental.sharedState[1].handle else { continue }
                if a == b { names.append(a) }
            }
        }
        XCTAssertEqual(names.count, 1, "the two handles name one file")
    }

    /// A segment whose physical file ends early fails the copy, naming the file.
    func testASegmentBeyondItsFilesEndIsNotCopied() throws {
        let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("plan-short-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: scratch, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: scratch) }
        try Data(repeating: 7, count: 100).write(to: URL(fileURLWithPath: scratch + "/physical"))
        let copy = SelfContainedPlan.Copy(source: scratch + "/physical", relativePath: "seg", size: 50, kind: .mergedSegments, offset: 80)
        XCTAssertFalse(copy.accepts(sourceLength: 100))
        XCTAssertThrowsError(try copy.write(to: scratch + "/seg")) { XCTAssertTrue("\($0)".contains("physical"), "\($0)") }
        let fits = SelfContainedPlan.Copy(source: scratch + "/physical", relativePath: "seg2", size: 20, kind: .mergedSegments, offset: 80)
        XCTAssertTrue(fits.accepts(sourceLength: 100))
        try fits.write(to: scratch + "/seg2")
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: scratch + "/seg2")), Data(repeating: 7, count: 20))
    }

    /// The file-backed handles of a snapshot, in the order `visitHandles` meets them.
    static func fileHandles(_ metadata: CheckpointMetadata) -> [StateHandle] {
        var out: [StateHandle] = []
        metadata.visitHandles { if $0.isFileBacked { out.append($0) } }
        return out
    }
}
