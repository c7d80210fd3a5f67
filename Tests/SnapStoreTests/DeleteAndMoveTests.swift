import Foundation
import SnapStore
import XCTest

final class DeleteAndMoveTests: XCTestCase {
    func testDeletingAReferencedSnapshotKeepsWhatOthersNeed() throws {
        let w = try Workspace()
        for i in 0..<20 { try w.write("seg-\(i)", String(repeating: "x\(i)", count: 500)) }
        let s1 = try w.snapshot()
        try w.write("seg-20", "new segment")
        try w.write("seg-3", "rewritten")
        let s2 = try w.snapshot()
        let s3 = try w.snapshot() // the recovery point
        let expected2 = try w.contentChecksums(s2.name)

        let report = try w.store.report(s1.name)
        XCTAssertEqual(report.referencedBy, [s2.name, s3.name])
        XCTAssertEqual(report.exclusiveObjects, 1, "only the old seg-3 is s1's alone")

        let sum = try w.store.delete(s1.name)
        XCTAssertEqual(sum.removedObjects, 1)
        XCTAssertEqual(sum.keptShared, 19)
        XCTAssertEqual(try w.contentChecksums(s2.name), expected2)
        let v = try w.store.verify()
        XCTAssertTrue(v.clean, "\(v)")
        XCTAssertEqual(w.filesUnder("objects").count, 21, "exactly what s2 and s3 reference")
        XCTAssertThrowsStoreError(try w.store.snapshot(named: s1.name)) { $0 == .noSuchSnapshot(s1.name) }
    }

    func testRecoveryPointIsRefusedAndNothingChanges() throws {
        let w = try Workspace()
        try w.write("a", "1")
        _ = try w.snapshot()
        let last = try w.snapshot(.nativeFull)
        let before = w.filesUnder("objects")
        XCTAssertThrowsStoreError(try w.store.delete(last.name)) {
            $0 == .busy(snapshot: last.name, reason: "recovery point: newer snapshot needed first")
        }
        XCTAssertEqual(w.filesUnder("objects"), before)
        XCTAssertEqual(try w.store.snapshots().count, 2)
        XCTAssertEqual(try w.store.report(last.name).notDeletableBecause, "recovery point: newer snapshot needed first")
        XCTAssertEqual(try w.store.events().last?.type, "refusal")
        // A stopped job has no recovery point to protect.
        try w.store.setMeta("job_state", "stopped")
        XCTAssertNoThrow(try w.store.delete(last.name))
    }

    func testRenameNeverReplacesAndValidatesNames() throws {
        let w = try Workspace()
        try w.write("a", "1")
        let a = try w.snapshot(label: "alpha")
        let b = try w.snapshot(label: "beta")
        XCTAssertThrowsStoreError(try w.store.rename(a.name, to: b.name)) { $0 == .alreadyExists("beta") }
        for bad in ["x/y", "..", ".hidden", "a\0b", String(repeating: "n", count: 300), "latest", "chk-99", ""] {
            XCTAssertThrowsStoreError(try w.store.rename(a.name, to: bad)) { if case .badInput = $0 { return true }; return false }
        }
        try w.store.rename(a.name, to: "gamma")
        XCTAssertEqual(try w.store.snapshots().map(\.name), ["gamma", "beta"])
        XCTAssertEqual(try w.store.snapshot(named: "gamma").id, a.id, "a move keeps the snapshot's identity")
    }

    func testLabelsAreValidatedBeforeAnythingIsWritten() throws {
        let w = try Workspace()
        try w.write("a", "1")
        _ = try w.snapshot(kind: .user, label: "taken")
        let cases: [(String, String)] = [
            ("a/b", "'/'"), ("..", "starts with '.'"), ("nul\0here", "0x00"),
            (String(repeating: "a", count: 300), "300 characters"), ("taken", "already exists"), ("sp-7", "automatic"),
        ]
        for (label, phrase) in cases {
            do {
                _ = try w.snapshot(kind: .user, label: label)
                XCTFail("label \(label.debugDescription) accepted")
            } catch let e as StoreError {
                XCTAssertTrue(e.description.contains(phrase), "\(e.description) should mention \(phrase)")
            }
        }
        XCTAssertEqual(try w.store.snapshots().count, 1)
        XCTAssertEqual(w.filesUnder("objects").count, 1)
    }

    func testRetentionRemovesOnlyOldCheckpoints() throws {
        let w = try Workspace()
        for i in 0..<6 {
            try w.write("f\(i)", "v\(i)")
            _ = try w.snapshot(kind: i == 1 ? .user : .checkpoint, label: i == 1 ? "keep-me" : nil)
        }
        let removed = w.store.applyRetention(keep: 2)
        XCTAssertEqual(removed.count, 3)
        let left = try w.store.snapshots()
        XCTAssertEqual(left.filter { $0.kind == .checkpoint }.count, 2)
        XCTAssertTrue(left.contains { $0.name == "keep-me" })
        XCTAssertTrue(try w.store.verify().clean)
        XCTAssertEqual(try w.store.events().filter { $0.type == "retention" }.count, 3)
    }
}
