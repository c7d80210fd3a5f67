import FlinkEngine
import FlinkMetadata
import FlinkFixtures
import Foundation
import SnapStore
import XCTest

/// `convert --to self-contained` on real Flink stores.
final class FlinkSelfContainedTests: XCTestCase {
    private let jobA = "c4f302458e6451f29e233030dfe8535c"

    /// A's newest retained incremental checkpoint, converted: a user snapshot in a new savepoint directory that
    /// holds every file it needs, named relatively, sharing none. Deleting every other snapshot of the job (which
    /// removes the shared/ files the checkpoint named) leaves it restorable, with the same files as before. The
    /// JobManager reports the job CANCELED, so its newest checkpoint is no longer its recovery point.
    func testConvertedCheckpointSurvivesDeletingEveryOtherSnapshotOfItsJob() throws {
        let (w, fake) = try FlinkWorkspace.canceling([jobA], store: 1)
        defer { fake.stop() }
        try w.importer.refresh()
        w.askCluster()
        let engine = FlinkEngine(store: w.store, settings: w.settings)
        let source = try w.store.snapshot(named: "c4f302-chk-13")
        let sourceDirectory = try XCTUnwrap(source.directory)
        let original = try MetadataReader.read(Data(contentsOf: w.root.appendingPathComponent(sourceDirectory + "/_metadata")))
        let originalFiles = original.referencedFiles(metadataDirectory: w.root.path + "/" + sourceDirectory, pathMap: PathMap(w.settings.pathMap))
        XCTAssertTrue(originalFiles.contains { $0.path.contains("/shared/") }, "the checkpoint reuses shared files")

        let converted = try engine.convertToSelfContained("c4f302-chk-13", label: "a13-self-contained")
        XCTAssertEqual(converted.name, "a13-self-contained")
        XCTAssertEqual(converted.kind, .user)
        XCTAssertEqual(converted.format, .nativeFull)
        let directory = try XCTUnwrap(converted.directory)
        XCTAssertTrue(directory.hasPrefix(w.settings.savepointDirectory + "/savepoint-c4f302-"), directory)

        // Every file inside the new directory, none shared with another snapshot, none outside the store.
        let entries = try w.store.entries(of: converted.id, includeHidden: true)
        XCTAssertFalse(entries.contains { $0.hidden }, "nothing outside the store")
        let files = entries.filter { $0.type == .file }
        XCTAssertEqual(files.count, originalFiles.count + 1, "every needed file and _metadata")
        for entry in files {
            XCTAssertTrue(entry.path.hasPrefix(directory + "/"), entry.path)
            XCTAssertEqual(entry.links, 1, entry.path)
        }
        // The new _metadata names each file relatively, with the sizes the original needed.
        let copy = try MetadataReader.read(Data(contentsOf: w.root.appendingPathComponent(directory + "/_metadata")))
        XCTAssertEqual(copy.version, original.version)
        copy.visitHandles { if case .file(let path, _) = $0 { XCTFail("absolute handle \(path)") } }
        let copyFiles = copy.referencedFiles(metadataDirectory: w.root.path + "/" + directory, pathMap: .identity)
        XCTAssertEqual(copyFiles.map(\.size).sorted(), originalFiles.map(\.size).sorted())
        // Byte for byte the files the original named.
        func contents(_ references: [FileReference]) throws -> [Data] {
            try references.map { try Data(contentsOf: URL(fileURLWithPath: $0.path)) }.sorted { $0.lexicographicallyPrecedes($1) }
        }
        XCTAssertEqual(try contents(copyFiles), try contents(originalFiles))

        for s in try w.store.snapshots() where s.job == jobA && s.name != converted.name {
            try w.store.delete(s.name)
        }
        XCTAssertFalse(w.exists(sourceDirectory), "the source checkpoint is gone")
        XCTAssertEqual(try w.store.snapshots().filter { $0.job == jobA }.map(\.name), [converted.name])
        let report = try FlinkVerifier(store: w.store, settings: w.settings).verify()
        let result = try XCTUnwrap(report.snapshots.first { $0.name == converted.name })
        XCTAssertTrue(result.restorable, "\(result.problems)")
        for file in copyFiles {
            let size = try FileManager.default.attributesOfItem(atPath: file.path)[.size] as? Int64
            XCTAssertEqual(size, file.size, file.path)
        }
        // A rescan finds the directory already recorded: still one snapshot, still the user's.
        try w.importer.refresh()
        XCTAssertEqual(try w.store.snapshot(named: converted.name).kind, .user)
        XCTAssertEqual(try w.store.snapshots().filter { $0.directory == directory }.count, 1)
    }

    /// A snapshot with files gone is refused, naming one, and nothing is left behind.
    func testASnapshotWithMissingFilesIsRefusedAndLeavesNothing() throws {
        let w = try FlinkWorkspace(store: 1)
        try w.importer.refresh()
        let engine = FlinkEngine(store: w.store, settings: w.settings)
        let before = try FileManager.default.contentsOfDirectory(atPath: w.root.path + "/" + w.settings.savepointDirectory)
        let count = try w.store.snapshots().count
        XCTAssertThrowsError(try engine.convertToSelfContained("savepoint-c4f302-ffe50290a9b7", label: nil)) { error in
            XCTAssertTrue("\(error)".contains("is missing"), "\(error)")
        }
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: w.root.path + "/" + w.settings.savepointDirectory), before)
        XCTAssertEqual(try w.store.snapshots().count, count)
        XCTAssertThrowsError(try engine.convertToSelfContained("c4f302-chk-13", label: "c4f302-chk-12")) { error in
            XCTAssertEqual(error as? StoreError, .alreadyExists("c4f302-chk-12"))
        }
    }

    /// A file-merging checkpoint (job B of the file-merging store, RocksDB incremental, restored NO_CLAIM), converted:
    /// each segment it reads is copied as a file of its own holding just the segment's bytes, named relatively; the
    /// physical files are not copied whole. Deleting every other snapshot of the job (which removes the physical
    /// files) leaves it restorable.
    func testFileMergingCheckpointIsConvertedSegmentBySegment() throws {
        let layout = "file-merging", job = "d4ef5f01c907c9533e0623182631e03c"
        let jobs = ["62bab94d0cbb0907cb0e9d0a60fd3a88", job, "a881b109166fc603d7c993bde8d95f25", "076e33796b8497c5a80fb11daa1da7df"]
        let fake = try FakeCluster(writtenAt: LayoutFixtures.writtenAt(layout),
                                   jobs: Dictionary(uniqueKeysWithValues: jobs.map { ($0, FakeCluster.Job(state: "CANCELED")) })).serve()
        defer { fake.stop() }
        let root = try LayoutFixtures.copy(layout)
        defer { try? FileManager.default.removeItem(at: root) }
        let settings = FlinkStoreSettings(restURL: fake.url, jobID: nil, pathMap: [(from: LayoutFixtures.writtenAt(layout), to: root.path)])
        let store = try Store.create(at: root, engine: FlinkStoreSettings.engineName, settings: settings.metaRows, adopting: true,
                                     rules: [FlinkRules()])
        _ = try FlinkEngine.forStore(store)
        try FlinkImporter(store: store, settings: settings).refresh()
        (store.hooks as? FlinkHooks)?.cluster.poll()
        let engine = FlinkEngine(store: store, settings: settings)
        let source = try XCTUnwrap(try store.snapshots().filter { $0.job == job && $0.kind == .checkpoint }
            .min { Int($0.externalID ?? "") ?? 0 < Int($1.externalID ?? "") ?? 0 })
        let sourceDirectory = root.path + "/" + (try XCTUnwrap(source.directory))
        let pathMap = PathMap(settings.pathMap)
        let original = try MetadataReader.read(Data(contentsOf: URL(fileURLWithPath: sourceDirectory + "/_metadata")))
        var segments: [FileSegmentHandle] = []
        original.visitHandles { if case .fileSegment(let s) = $0 { segments.append(s) } }
        XCTAssertGreaterThan(segments.count, 5, "\(source.name) reads file-merging segments")

        let converted = try engine.convertToSelfContained(source.name, label: "b-self-contained")
        XCTAssertEqual(converted.kind, .user)
        let directory = try XCTUnwrap(converted.directory)
        XCTAssertTrue(directory.hasPrefix(settings.savepointDirectory + "/savepoint-d4ef5f-"), directory)
        let files = try store.entries(of: converted.id, includeHidden: true).filter { $0.type == .file }
        for entry in files {
            XCTAssertTrue(entry.path.hasPrefix(directory + "/"), entry.path)
            XCTAssertEqual(entry.links, 1, entry.path)
        }
        // Handle by handle: relative, reading exactly what the original handle read.
        let copy = try MetadataReader.read(Data(contentsOf: root.appendingPathComponent(directory + "/_metadata")))
        XCTAssertEqual(copy.version, original.version)
        var before: [StateHandle] = [], after: [StateHandle] = []
        original.visitHandles { if $0.isFileBacked { before.append($0) } }
        copy.visitHandles { if $0.isFileBacked { after.append($0) } }
        XCTAssertEqual(before.count, after.count)
        var copiedBytes = Set<String>()
        for (old, new) in zip(before, after) {
            guard case .relativeFile(let relative, let size) = new else { XCTFail("not relative: \(new)"); continue }
            let bytes = try Data(contentsOf: root.appendingPathComponent(directory + "/" + relative))
            XCTAssertEqual(Int64(bytes.count), size, relative)
            let whole = try Data(contentsOf: URL(fileURLWithPath: try XCTUnwrap(old.resolvedFilePath(metadataDirectory: sourceDirectory, pathMap: pathMap))))
            if case .fileSegment(let s) = old {
                XCTAssertEqual(bytes, whole.subdata(in: Int(s.startPosition)..<Int(s.startPosition + s.size)), relative)
            } else {
                XCTAssertEqual(bytes, whole, relative)
            }
            copiedBytes.insert(relative)
        }
        XCTAssertEqual(files.count, copiedBytes.count + 1, "one file per segment or file, and _metadata")

        for s in try store.snapshots() where s.job == job && s.name != converted.name { try store.delete(s.name) }
        XCTAssertFalse(FileManager.default.fileExists(atPath: sourceDirectory), "the source checkpoint is gone")
        let report = try FlinkVerifier(store: store, settings: settings).verify()
        let result = try XCTUnwrap(report.snapshots.first { $0.name == converted.name })
        XCTAssertTrue(result.restorable, "\(result.problems)")
    }
}

