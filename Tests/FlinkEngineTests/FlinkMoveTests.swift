import FlinkEngine
import FlinkFixtures
import FlinkMetadata
import Foundation
import SnapStore
import XCTest

/// Moves of Flink snapshots: a self-contained savepoint moves with its directory; a checkpoint stays refused and
/// the refusal names the way (`convert --to self-contained`); a move cut short is finished or rolled back.
final class FlinkMoveTests: XCTestCase {
    private let canonical = "savepoints/savepoint-c4f302-a3c72ffbb47e"

    private func verify(_ w: FlinkWorkspace) throws -> FlinkVerifyReport { try FlinkVerifier(store: w.store, settings: w.settings).verify() }

    func testASelfContainedSavepointMovesWithItsDirectory() throws {
        let w = try FlinkWorkspace(store: 1)
        try w.importer.refresh()
        let before = try w.store.snapshot(named: "savepoint-c4f302-a3c72ffbb47e")
        let files = try w.store.entries(of: before.id).filter { $0.type == .file }.map { PathBytes.components($0.path).last! }.sorted()
        try w.store.rename(before.name, to: "before-upgrade")

        let after = try w.store.snapshot(named: "before-upgrade")
        XCTAssertEqual(after.id, before.id)
        XCTAssertEqual(after.directory, "savepoints/before-upgrade")
        XCTAssertFalse(w.exists(canonical))
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: w.root.path + "/savepoints/before-upgrade").sorted(), files)
        let entries = try w.store.entries(of: after.id).filter { $0.type == .file }
        XCTAssertTrue(entries.allSatisfy { $0.path.hasPrefix("savepoints/before-upgrade/") && $0.objectPath == $0.path }, "\(entries.map(\.path))")
        // Every file its _metadata names, resolved from the new directory, is there with its length.
        let metadata = try MetadataReader.read(Data(contentsOf: w.root.appendingPathComponent("savepoints/before-upgrade/_metadata")))
        for file in metadata.referencedFiles(metadataDirectory: w.root.path + "/savepoints/before-upgrade", pathMap: .identity) {
            XCTAssertEqual((try? FileManager.default.attributesOfItem(atPath: file.path))?[.size] as? Int64, file.size, file.path)
        }
        let report = try verify(w)
        XCTAssertEqual(report.snapshots.first { $0.name == "before-upgrade" }?.restorable, true)
        XCTAssertEqual(report.unreferenced, [])
        XCTAssertEqual(try w.importer.refresh().added, [], "the new directory is the same snapshot")
        XCTAssertEqual(try w.store.events().last?.type, "move")
        XCTAssertNil(try w.store.meta("pending_move"))

        // A directory already at the target name on disk: refused, nothing moves.
        try FileManager.default.createDirectory(atPath: w.root.path + "/savepoints/taken", withIntermediateDirectories: false)
        XCTAssertThrowsError(try w.store.rename("before-upgrade", to: "taken")) { error in
            XCTAssertTrue("\(error)".contains("savepoints/taken already exists"), "\(error)")
        }
        XCTAssertEqual(try w.store.snapshot(named: "before-upgrade").directory, "savepoints/before-upgrade")
        XCTAssertTrue(w.exists("savepoints/before-upgrade/_metadata"))
    }

    /// A checkpoint cannot move; the message says how to make one that can, and that one moves.
    func testACheckpointIsRefusedAndItsSelfContainedCopyMoves() throws {
        let w = try FlinkWorkspace(store: 1)
        try w.importer.refresh()
        XCTAssertThrowsError(try w.store.rename("c4f302-chk-13", to: "keep-me")) { error in
            guard case StoreError.notPermitted(let why)? = error as? StoreError else { return XCTFail("\(error)") }
            XCTAssertTrue(why.contains("snapfs convert c4f302-chk-13 --to self-contained"), why)
        }
        XCTAssertTrue(w.exists("checkpoints/c4f302458e6451f29e233030dfe8535c/chk-13/_metadata"))
        let copy = try FlinkEngine(store: w.store, settings: w.settings).convertToSelfContained("c4f302-chk-13", label: "a13")
        try w.store.rename("a13", to: "a13-archived")
        XCTAssertEqual(try w.store.snapshot(named: "a13-archived").directory, w.settings.savepointDirectory + "/a13-archived")
        XCTAssertFalse(w.exists(try XCTUnwrap(copy.directory)))
        XCTAssertEqual(try verify(w).snapshots.first { $0.name == "a13-archived" }?.restorable, true)
    }

    /// The journal a move writes before it renames the directory, as a process that died left it.
    private func journal(_ s: Snapshot, to name: String, from: String, to directory: String) -> String {
        let object: [String: Any] = ["snapshot": s.id, "oldName": s.name, "newName": name, "from": from, "to": directory, "owner": "a-process-that-died"]
        return String(decoding: try! JSONSerialization.data(withJSONObject: object), as: UTF8.self)
    }

    /// Cut after the rename: the next open finishes the move in the catalog.
    func testAMoveCutAfterTheRenameIsFinishedOnOpen() throws {
        let w = try FlinkWorkspace(store: 1)
        try w.importer.refresh()
        let s = try w.store.snapshot(named: "savepoint-c4f302-a3c72ffbb47e")
        try w.store.setMeta("pending_move", journal(s, to: "moved", from: canonical, to: "savepoints/moved"))
        // A pass meanwhile neither adds the new directory nor forgets the old snapshot.
        try FileManager.default.moveItem(atPath: w.root.path + "/" + canonical, toPath: w.root.path + "/savepoints/moved")
        let pass = try w.importer.refresh()
        XCTAssertEqual(pass.added, [])
        XCTAssertEqual(pass.forgotten, [])

        let reopened = try Store.open(at: w.root, rules: [FlinkRules()])
        let moved = try reopened.snapshot(named: "moved")
        XCTAssertEqual(moved.id, s.id)
        XCTAssertEqual(moved.directory, "savepoints/moved")
        XCTAssertNil(try reopened.meta("pending_move"))
        XCTAssertTrue(try reopened.entries(of: s.id).filter { $0.type == .file }.allSatisfy { $0.path.hasPrefix("savepoints/moved/") })
        XCTAssertEqual(try verify(w).snapshots.first { $0.name == "moved" }?.restorable, true)
    }

    /// Cut before the rename: the next open rolls the journal back; the snapshot keeps its name and directory.
    func testAMoveCutBeforeTheRenameIsRolledBackOnOpen() throws {
        let w = try FlinkWorkspace(store: 1)
        try w.importer.refresh()
        let s = try w.store.snapshot(named: "savepoint-c4f302-a3c72ffbb47e")
        try w.store.setMeta("pending_move", journal(s, to: "moved", from: canonical, to: "savepoints/moved"))
        let reopened = try Store.open(at: w.root, rules: [FlinkRules()])
        XCTAssertNil(try reopened.meta("pending_move"))
        XCTAssertEqual(try reopened.snapshot(named: s.name).directory, canonical)
        XCTAssertThrowsError(try reopened.snapshot(named: "moved"))
        XCTAssertEqual(try reopened.events().last?.type, "rollback")
        XCTAssertTrue(w.exists(canonical + "/_metadata"))
    }
}
