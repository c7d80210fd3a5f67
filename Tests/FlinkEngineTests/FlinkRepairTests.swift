import FlinkEngine
import FlinkFixtures
import FlinkMetadata
import Foundation
import SnapStore
import XCTest

/// `repair` of the FLINK-39964 pattern on a real store: a checkpoint of a job restored in CLAIM mode from a
/// savepoint with relative handles holds those handles, which Flink resolves against the checkpoint's own
/// `chk-N`, while the bytes stay in the savepoint's directory. Made here from store-1's canonical savepoint (whose
/// handles are all relative): its `_metadata` placed in a new job's `chk-7`, as such a checkpoint holds it.
final class FlinkRepairTests: XCTestCase {
    private let savepoint = "savepoints/savepoint-c4f302-a3c72ffbb47e"
    private let checkpoint = "checkpoints/0f0e0d0c0b0a09080706050403020100/chk-7"

    private func workspace() throws -> (FlinkWorkspace, Snapshot) {
        let w = try FlinkWorkspace(store: 1)
        try FileManager.default.createDirectory(at: w.root.appendingPathComponent(checkpoint), withIntermediateDirectories: true)
        try FileManager.default.copyItem(at: w.root.appendingPathComponent(savepoint + "/_metadata"),
                                         to: w.root.appendingPathComponent(checkpoint + "/_metadata"))
        try w.importer.refresh()
        return (w, try w.snapshot(directory: checkpoint))
    }

    private func result(_ w: FlinkWorkspace, _ name: String) throws -> FlinkVerifyReport.SnapshotResult {
        try XCTUnwrap(try FlinkVerifier(store: w.store, settings: w.settings).verify().snapshots.first { $0.name == name })
    }

    private func relativeHandles(_ data: Data) throws -> Int {
        var relative = 0
        try MetadataReader.read(data).visitHandles { if case .relativeFile = $0 { relative += 1 } }
        return relative
    }

    func testVerifyRepairVerify() throws {
        let (w, s) = try workspace()
        let metadataURL = w.root.appendingPathComponent(checkpoint + "/_metadata")
        let original = try Data(contentsOf: metadataURL)
        XCTAssertGreaterThan(try relativeHandles(original), 0)
        let before = try result(w, s.name)
        XCTAssertFalse(before.restorable)
        XCTAssertFalse(before.problems.isEmpty)
        XCTAssertTrue(before.problems.allSatisfy { $0.path.hasPrefix(checkpoint + "/") && $0.problem == "missing" }, "\(before.problems)")

        // A dry run says what it would do and changes nothing.
        let engine = FlinkEngine(store: w.store, settings: w.settings)
        let entriesBefore = try w.store.entries(of: s.id, includeHidden: true).map(\.path)
        let eventsBefore = try w.store.events().count
        let dry = try engine.repair(s.name, dryRun: true)
        XCTAssertTrue(dry.dryRun)
        XCTAssertFalse(dry.repaired)
        XCTAssertEqual(dry.fixes.count, before.problems.count)
        XCTAssertTrue(dry.fixes.allSatisfy { $0.foundAt.hasPrefix(w.root.path + "/" + savepoint + "/") }, "\(dry.fixes)")
        XCTAssertEqual(try Data(contentsOf: metadataURL), original)
        XCTAssertFalse(w.exists(checkpoint + "/_metadata.before-repair"))
        XCTAssertEqual(try w.store.entries(of: s.id, includeHidden: true).map(\.path), entriesBefore)
        XCTAssertEqual(try w.store.events().count, eventsBefore)
        XCTAssertFalse(try result(w, s.name).restorable)

        let report = try engine.repair(s.name, dryRun: false)
        XCTAssertTrue(report.repaired)
        XCTAssertEqual(report.fixes, dry.fixes)
        XCTAssertEqual(report.kept, checkpoint + "/_metadata.before-repair")
        XCTAssertEqual(try Data(contentsOf: w.root.appendingPathComponent(checkpoint + "/_metadata.before-repair")), original)
        // Every rewritten handle names its file as Flink sees the store (the path map read backwards).
        let repaired = try MetadataReader.read(Data(contentsOf: metadataURL))
        XCTAssertEqual(repaired.version, try MetadataReader.read(original).version)
        XCTAssertEqual(try relativeHandles(Data(contentsOf: metadataURL)), 0)
        var absolute: [String] = []
        repaired.visitHandles { if case .file(let path, _) = $0 { absolute.append(path) } }
        XCTAssertFalse(absolute.isEmpty)
        XCTAssertTrue(absolute.allSatisfy { $0.hasPrefix(FlinkFixtures.writtenAt + "/" + savepoint + "/") }, "\(absolute)")
        // No temporary file left.
        let names = try FileManager.default.contentsOfDirectory(atPath: w.root.path + "/" + checkpoint).sorted()
        XCTAssertEqual(names, ["_metadata", "_metadata.before-repair"])

        let after = try result(w, s.name)
        XCTAssertTrue(after.restorable, "\(after.problems)")
        let files = try w.store.entries(of: s.id, includeHidden: true).filter { $0.type == .file }.map(\.path)
        XCTAssertTrue(files.contains(checkpoint + "/_metadata.before-repair"))
        XCTAssertEqual(files.filter { $0.hasPrefix(savepoint + "/") }.count, report.fixes.count, "\(files)")
        XCTAssertFalse(files.contains { $0.hasPrefix(checkpoint + "/") && !$0.hasSuffix("_metadata") && !$0.hasSuffix("before-repair") })
        let event = try XCTUnwrap(try w.store.events().last)
        XCTAssertEqual(event.type, "repair")
        XCTAssertEqual(event.snapshot, s.name)
        // The kept original is the snapshot's, not an orphan; and a rescan does not take it for a snapshot.
        try w.importer.refresh()
        let verify = try FlinkVerifier(store: w.store, settings: w.settings).verify()
        XCTAssertFalse(verify.unreferenced.contains { $0.contains("before-repair") }, "\(verify.unreferenced)")
        XCTAssertEqual(try w.store.snapshots().filter { $0.directory?.hasPrefix(checkpoint) == true }.count, 1)
        // Again: nothing to do.
        let again = try engine.repair(s.name, dryRun: false)
        XCTAssertFalse(again.repaired)
        XCTAssertEqual(again.fixes, [])
        XCTAssertEqual(try Data(contentsOf: w.root.appendingPathComponent(checkpoint + "/_metadata.before-repair")), original)
    }

    /// A file that is nowhere: refused, the file named, nothing changed.
    func testGoneBytesRefuseTheRepairAndNameTheFile() throws {
        let (w, s) = try workspace()
        let engine = FlinkEngine(store: w.store, settings: w.settings)
        let fix = try XCTUnwrap(try engine.repair(s.name, dryRun: true).fixes.first)
        try FileManager.default.removeItem(atPath: fix.foundAt)
        let metadataURL = w.root.appendingPathComponent(checkpoint + "/_metadata")
        let original = try Data(contentsOf: metadataURL)
        let entries = try w.store.entries(of: s.id, includeHidden: true).map(\.path)
        XCTAssertThrowsError(try engine.repair(s.name, dryRun: false)) { error in
            guard case StoreError.notPermitted(let message) = error else { return XCTFail("\(error)") }
            XCTAssertTrue(message.contains(fix.looksAt), message)
            XCTAssertTrue(message.contains("gone"), message)
        }
        XCTAssertThrowsError(try engine.repair(s.name, dryRun: true))
        XCTAssertEqual(try Data(contentsOf: metadataURL), original)
        XCTAssertFalse(w.exists(checkpoint + "/_metadata.before-repair"))
        XCTAssertEqual(try w.store.entries(of: s.id, includeHidden: true).map(\.path), entries)
        XCTAssertFalse(try result(w, s.name).restorable)
    }
}
