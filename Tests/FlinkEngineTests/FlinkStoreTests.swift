import FlinkEngine
import FlinkMetadata
import FlinkFixtures
import Foundation
import SnapStore
import XCTest

/// A copy of a fixture store opened as a SnapFS Flink store, removed after the test.
final class FlinkWorkspace {
    let root: URL
    let store: Store
    let settings: FlinkStoreSettings
    let truth: [FlinkFixtures.Snapshot]

    init(store number: Int, job: String? = nil, rest: String? = nil, rules: FlinkRules = FlinkRules()) throws {
        root = try FlinkFixtures.copy(store: number)
        settings = FlinkStoreSettings(restURL: rest, jobID: job, pathMap: [(from: FlinkFixtures.writtenAt, to: root.path)])
        store = try Store.create(at: root, engine: FlinkStoreSettings.engineName, settings: settings.metaRows, adopting: true,
                                 rules: [rules])
        _ = try FlinkEngine.forStore(store)
        truth = try FlinkFixtures.truth(store: number, root: root.path)
    }

    deinit { try? FileManager.default.removeItem(at: root) }

    var importer: FlinkImporter { FlinkImporter(store: store, settings: settings) }

    /// A workspace whose JobManager (a fake, to stop after use) reports `canceled` as CANCELED and knows no other
    /// job, as after the real runs that wrote the fixtures.
    static func canceling(_ canceled: [String], store number: Int) throws -> (FlinkWorkspace, FakeFlink) {
        let cluster = FakeCluster(writtenAt: FlinkFixtures.writtenAt,
                                  jobs: Dictionary(uniqueKeysWithValues: canceled.map { ($0, FakeCluster.Job(state: "CANCELED")) }))
        let fake = try cluster.serve()
        return (try FlinkWorkspace(store: number, rest: fake.url), fake)
    }

    /// Has the store's rules ask the JobManager now, as a mount's background poll does.
    func askCluster() { (store.hooks as? FlinkHooks)?.cluster.poll() }

    /// Store-relative path of a truth line (`/abs/path<TAB>size`).
    func relative(_ line: String) -> (path: String, size: Int64) {
        let parts = line.split(separator: "\t")
        return (String(parts[0].dropFirst(root.path.count + 1)), Int64(parts[1]) ?? -1)
    }

    func snapshot(directory: String) throws -> Snapshot {
        try XCTUnwrap(try store.snapshots().first { $0.directory == directory }, directory)
    }

    func exists(_ relative: String) -> Bool { FileManager.default.fileExists(atPath: root.path + "/" + relative) }
}

final class FlinkImportTests: XCTestCase {
    /// Every snapshot of both stores is recorded with exactly the files Flink's deserializer names, plus its
    /// `_metadata`, at store-relative paths and with Flink's sizes.
    func testImportRecordsEveryFileFlinkNames() throws {
        for number in [1, 2] {
            let w = try FlinkWorkspace(store: number)
            let report = try w.importer.refresh()
            XCTAssertEqual(report.added.count, w.truth.count)
            XCTAssertTrue(report.unreadable.isEmpty, "\(report.unreadable)")
            for t in w.truth {
                let s = try w.snapshot(directory: t.directory)
                let files = try w.store.entries(of: s.id).filter { $0.type == .file }
                let recorded = Set(files.map { "\($0.path)\t\($0.size)" })
                var expected = Set(t.files.map { line -> String in let r = w.relative(line); return "\(r.path)\t\(r.size)" })
                let metadataSize = try FileManager.default.attributesOfItem(atPath: w.root.path + "/" + t.directory + "/_metadata")[.size] as? Int
                expected.insert("\(t.directory)/_metadata\t\(metadataSize ?? -1)")
                XCTAssertEqual(recorded, expected, t.directory)
                XCTAssertEqual(s.externalID, String(t.checkpointId))
            }
        }
    }

    func testNamesKindsAndFormats() throws {
        let w = try FlinkWorkspace(store: 1)
        try w.importer.refresh()
        let byName = Dictionary(uniqueKeysWithValues: try w.store.snapshots().map { ($0.name, $0) })
        let canonical = try XCTUnwrap(byName["savepoint-c4f302-a3c72ffbb47e"])
        XCTAssertEqual(canonical.kind, .user)
        XCTAssertEqual(canonical.format, .canonical)
        XCTAssertEqual(canonical.job, "c4f302458e6451f29e233030dfe8535c")
        let native = try XCTUnwrap(byName["savepoint-c4f302-ffe50290a9b7"])
        XCTAssertEqual(native.kind, .user)
        XCTAssertEqual(native.format, .nativeFull)
        let incremental = try XCTUnwrap(byName["c4f302-chk-13"])
        XCTAssertEqual(incremental.kind, .checkpoint)
        XCTAssertEqual(incremental.format, .nativeIncremental)
        XCTAssertEqual(incremental.directory, "checkpoints/c4f302458e6451f29e233030dfe8535c/chk-13")
        // Job D runs the HashMap backend: full checkpoints with their state inside chk-N.
        let full = try XCTUnwrap(byName["4b9133-chk-5"])
        XCTAssertEqual(full.format, .nativeFull)
        XCTAssertEqual(Set(byName.keys).count, 14)
    }

    /// A second pass changes nothing; a checkpoint that appears is added; one Flink removed is forgotten
    /// without touching a file.
    func testReimportIsIdempotentAndFollowsFlink() throws {
        let w = try FlinkWorkspace(store: 1)
        let hidden = w.root.appendingPathComponent("checkpoints/dd758ebfe2c5e0335122d7ddaf752ba0/chk-17")
        let aside = w.root.deletingLastPathComponent().appendingPathComponent("chk-17-aside-\(UUID().uuidString)")
        try FileManager.default.moveItem(at: hidden, to: aside)
        XCTAssertEqual(try w.importer.refresh().added.count, 13)
        let again = try w.importer.refresh()
        XCTAssertEqual(again.added, [])
        XCTAssertEqual(again.forgotten, [])
        XCTAssertEqual(again.unchanged, 13)

        try FileManager.default.moveItem(at: aside, to: hidden)
        XCTAssertEqual(try w.importer.refresh().added, ["dd758e-chk-17"])

        // Flink subsumes chk-15: it removes the directory (its shared files may live on for chk-16).
        let before = Set(try w.store.objects().map(\.path))
        try FileManager.default.removeItem(at: w.root.appendingPathComponent("checkpoints/dd758ebfe2c5e0335122d7ddaf752ba0/chk-15"))
        let shared = try w.store.entries(of: try w.snapshot(directory: "checkpoints/dd758ebfe2c5e0335122d7ddaf752ba0/chk-16").id)
            .filter { $0.path.contains("/shared/") }.map(\.path)
        let pass = try w.importer.refresh()
        XCTAssertEqual(pass.forgotten, ["dd758e-chk-15"])
        XCTAssertNil(try w.store.snapshots().first { $0.name == "dd758e-chk-15" })
        for p in shared { XCTAssertTrue(w.exists(p), p) }
        let after = Set(try w.store.objects().map(\.path))
        XCTAssertTrue(after.isSubset(of: before))
        XCTAssertFalse(after.contains("checkpoints/dd758ebfe2c5e0335122d7ddaf752ba0/chk-15/_metadata"))
    }

    /// A `_metadata` that does not decode is reported, not guessed at, and the rest of the store imports.
    func testDamagedMetadataIsReportedNotImported() throws {
        let w = try FlinkWorkspace(store: 1)
        let path = w.root.path + "/checkpoints/c4f302458e6451f29e233030dfe8535c/chk-12/_metadata"
        let data = try Data(contentsOf: URL(fileURLWithPath: path))
        try data.prefix(data.count / 2).write(to: URL(fileURLWithPath: path))
        let report = try w.importer.refresh()
        XCTAssertEqual(report.added.count, 13)
        XCTAssertEqual(report.unreadable.map(\.directory), ["checkpoints/c4f302458e6451f29e233030dfe8535c/chk-12"])
        XCTAssertTrue(report.unreadable[0].error.contains("at byte"), report.unreadable[0].error)
        // gc cannot know which files the damaged snapshot needs, so it removes nothing.
        let orphan = "checkpoints/c4f302458e6451f29e233030dfe8535c/shared/orphan"
        try Data("x".utf8).write(to: w.root.appendingPathComponent(orphan))
        XCTAssertThrowsError(try FlinkEngine(store: w.store, settings: w.settings).gc(grace: 0))
        XCTAssertTrue(w.exists(orphan))
        XCTAssertTrue(w.exists("checkpoints/c4f302458e6451f29e233030dfe8535c/chk-12/_metadata"))
        // Once the damaged directory is gone, the orphan is collected and every snapshot still verifies.
        try FileManager.default.removeItem(at: w.root.appendingPathComponent("checkpoints/c4f302458e6451f29e233030dfe8535c/chk-12"))
        let gc = try FlinkEngine(store: w.store, settings: w.settings).gc(grace: 0)
        XCTAssertTrue(gc.removedFiles.contains(orphan), "\(gc.removedFiles)")
        let verify = try FlinkVerifier(store: w.store, settings: w.settings).verify()
        XCTAssertEqual(verify.notRestorable, ["savepoint-c4f302-ffe50290a9b7"])
    }
}

extension FlinkImportTests {
    /// A `_metadata` edited to name the store's own catalog as a state file: deleting that snapshot must not
    /// remove the catalog.
    func testMetadataNamingTheCatalogCannotMakeADeleteRemoveIt() throws {
        let (w, fake) = try FlinkWorkspace.canceling(["c4f302458e6451f29e233030dfe8535c"], store: 1)
        defer { fake.stop() }
        let dir = "checkpoints/c4f302458e6451f29e233030dfe8535c/chk-13"
        let url = w.root.appendingPathComponent(dir + "/_metadata")
        var bytes = [UInt8](try Data(contentsOf: url))
        let old = Array("file:/srv/flink-store/checkpoints/c4f302458e6451f29e233030dfe8535c/shared/18fd084f-bd82-4508-8d89-36a706935e63".utf8)
        let new = Array("file:/srv/flink-store/catalog.sqlite".utf8)
        let at = try XCTUnwrap((0...(bytes.count - old.count)).first { bytes[$0..<($0 + old.count)].elementsEqual(old) })
        bytes.replaceSubrange((at - 2)..<(at + old.count), with: [0, UInt8(new.count)] + new)
        try Data(bytes).write(to: url)
        try w.importer.refresh()
        let s = try w.snapshot(directory: dir)
        XCTAssertFalse(try w.store.entries(of: s.id).contains { $0.path == "catalog.sqlite" })
        try w.store.delete(s.name)
        XCTAssertTrue(w.exists("catalog.sqlite"))
        XCTAssertNoThrow(try FlinkEngine.openStore(at: w.root).snapshots())
    }
}

final class FlinkVerifyTests: XCTestCase {
    func testStore1OnlyTheClaimedNativeSavepointIsNotRestorable() throws {
        let w = try FlinkWorkspace(store: 1)
        let report = try FlinkVerifier(store: w.store, settings: w.settings).verify()
        XCTAssertEqual(report.snapshots.count, 14)
        XCTAssertEqual(report.notRestorable, ["savepoint-c4f302-ffe50290a9b7"])
        let bad = try XCTUnwrap(report.snapshots.first { !$0.restorable })
        XCTAssertEqual(bad.directory, "savepoints/savepoint-c4f302-ffe50290a9b7")
        XCTAssertEqual(bad.problems.count, 14, "Flink removed 14 of the 16 files it needs")
        XCTAssertEqual(bad.files, 17, "16 state files and _metadata")
        XCTAssertTrue(bad.problems.allSatisfy { $0.problem == "missing" })
    }

    func testStore2ClaimedCheckpointsAndNativeSavepointAreNotRestorable() throws {
        let w = try FlinkWorkspace(store: 2)
        let report = try FlinkVerifier(store: w.store, settings: w.settings).verify()
        XCTAssertEqual(report.snapshots.count, 16)
        XCTAssertEqual(Set(report.notRestorable), ["921f15-chk-11", "921f15-chk-12", "savepoint-921f15-e02738e55fb2"])
        let native = try XCTUnwrap(report.snapshots.first { $0.name == "savepoint-921f15-e02738e55fb2" })
        XCTAssertEqual(native.problems.count, 10, "10 of its 12 files are gone")
        // Each reported file is really absent, and each file of a restorable snapshot is really there.
        for s in report.snapshots {
            for p in s.problems { XCTAssertFalse(w.exists(p.path), p.path) }
        }
    }

    /// A file only Flink's removed checkpoints used is an orphan: listed for gc, not claimed by any snapshot.
    func testOrphansAreListed() throws {
        let w = try FlinkWorkspace(store: 1)
        let orphan = "checkpoints/c4f302458e6451f29e233030dfe8535c/shared/orphan-\(UUID().uuidString)"
        try Data("x".utf8).write(to: w.root.appendingPathComponent(orphan))
        let report = try FlinkVerifier(store: w.store, settings: w.settings).verify()
        XCTAssertTrue(report.unreferenced.contains(orphan), "\(report.unreferenced)")
        XCTAssertFalse(report.unreferenced.contains { $0.hasSuffix("/_metadata") })
    }
}
