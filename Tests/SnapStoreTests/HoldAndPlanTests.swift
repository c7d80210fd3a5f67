import Foundation
import SnapStore
import XCTest

/// Bytes of every regular file under `dir`, by path relative to it: what a delete frees is measured here, on disk.
func fileSizes(under dir: String) -> [String: Int64] {
    var out: [String: Int64] = [:]
    guard let en = FileManager.default.enumerator(atPath: dir) else { return out }
    while let p = en.nextObject() as? String {
        var st = stat()
        if lstat(dir + "/" + p, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG { out[p] = Int64(st.st_size) }
    }
    return out
}

final class HoldAndPlanTests: XCTestCase {
    /// Five incrementals where each round rewrites some files: snapshots share most objects with their neighbours.
    private func fiveRounds() throws -> (Workspace, [Snapshot]) {
        let w = try Workspace()
        var snaps: [Snapshot] = []
        for round in 0..<5 {
            for i in 0..<8 where round == 0 || i % (round + 1) == 0 {
                try w.write("f\(i)", String(repeating: "r\(round)i\(i)", count: 100 + 37 * i))
            }
            snaps.append(try w.snapshot(kind: round < 3 ? .checkpoint : .user))
        }
        return (w, snaps)
    }

    func testADryRunIsExactlyWhatTheDeleteThatFollowsDoes() throws {
        let (w, snaps) = try fiveRounds()
        let names = [snaps[1].name, snaps[2].name, snaps[4].name, "no-such"]
        let generation = w.store.generation()
        let events = try w.store.events().count
        let before = fileSizes(under: w.storeURL.path + "/objects")

        let dry = try w.store.delete(names, dryRun: true)
        XCTAssertTrue(dry.dryRun)
        XCTAssertEqual(dry.snapshots, [snaps[1].name, snaps[2].name])
        XCTAssertEqual(dry.refused, [.init(snapshot: snaps[4].name, reason: "recovery point: newer snapshot needed first")])
        XCTAssertEqual(dry.missing, ["no-such"])
        XCTAssertFalse(dry.removedFiles.isEmpty)
        XCTAssertFalse(dry.keptShared.isEmpty)
        XCTAssertEqual(dry.bytesFreed, dry.removedFiles.reduce(0) { $0 + ($1.bytesOnDisk ?? 0) })
        // Shared files say who keeps them, and every one of those really references the file.
        for f in dry.keptShared {
            XCTAssertFalse(f.keptFor.isEmpty)
            for keeper in f.keptFor {
                let k = try w.store.snapshot(named: keeper)
                XCTAssertTrue(try w.store.entries(of: k.id).contains { $0.objectPath == f.path }, "\(keeper) needs \(f.path)")
            }
        }
        // Nothing changed: files, catalog, events.
        XCTAssertEqual(fileSizes(under: w.storeURL.path + "/objects"), before)
        XCTAssertEqual(w.store.generation(), generation)
        XCTAssertEqual(try w.store.events().count, events)
        XCTAssertEqual(try w.store.snapshots().count, 5)

        let real = try w.store.delete(names)
        XCTAssertFalse(real.dryRun)
        var undry = dry
        undry.dryRun = false
        XCTAssertEqual(real, undry, "the delete did what its dry run said")
        let after = fileSizes(under: w.storeURL.path + "/objects")
        let gone = Set(before.keys).subtracting(after.keys)
        XCTAssertEqual(gone.map { "objects/" + $0 }.sorted(), dry.removedFiles.map(\.path).sorted(), "the files removed are the files announced")
        XCTAssertEqual(before.values.reduce(0, +) - after.values.reduce(0, +), dry.bytesFreed, "the bytes freed, on disk")
        XCTAssertEqual(try w.store.snapshots().map(\.name), [snaps[0].name, snaps[3].name, snaps[4].name])
        XCTAssertTrue(try w.store.verify().clean)
    }

    func testAHoldRefusesDeleteMoveRetentionAndPruneUntilReleased() throws {
        let (w, snaps) = try fiveRounds()
        let held = snaps[0].name
        XCTAssertNil(try w.store.hold(held, reason: "audit 7: keep until reviewed"))
        XCTAssertEqual(try w.store.hold(held, reason: "audit 7b")?.reason, "audit 7: keep until reviewed", "a second hold replaces the reason")
        let objects = fileSizes(under: w.storeURL.path + "/objects")

        XCTAssertThrowsStoreError(try w.store.delete(held)) { $0 == .busy(snapshot: held, reason: "held: audit 7b") }
        XCTAssertEqual(StoreError.busy(snapshot: held, reason: "held: audit 7b").exitCode, 5)
        XCTAssertThrowsStoreError(try w.store.rename(held, to: "elsewhere")) { $0 == .busy(snapshot: held, reason: "held: audit 7b") }
        XCTAssertEqual(w.store.applyRetention(keep: 1).map(\.snapshot), [snaps[1].name], "retention passes over the held checkpoint")
        let pruned = try w.store.prune(RetentionPolicy(last: 1), dryRun: false)
        XCTAssertEqual(pruned.plan.snapshots, [snaps[3].name, snaps[2].name])
        XCTAssertEqual(pruned.kept.map(\.name), [snaps[4].name, held])
        XCTAssertEqual(pruned.kept.last?.reasons, ["held: audit 7b"])
        XCTAssertEqual(try w.store.snapshots().map(\.name), [held, snaps[4].name])
        let remaining = fileSizes(under: w.storeURL.path + "/objects")
        XCTAssertLessThan(remaining.count, objects.count)
        for (path, size) in try w.store.entries(of: snaps[0].id).compactMap({ e in e.objectPath.map { ($0, e.size) } }) {
            XCTAssertEqual(remaining[String(path.dropFirst("objects/".count))], size, "\(path) of the held snapshot is still there")
        }
        let refusals = try w.store.events().filter { $0.type == "refusal" && $0.snapshot == held }.map(\.detail)
        XCTAssertTrue(refusals.contains("delete refused: held: audit 7b"), "\(refusals)")
        XCTAssertTrue(refusals.contains("delete refused (retention): held: audit 7b"), "\(refusals)")
        XCTAssertTrue(refusals.contains("delete refused (prune): held: audit 7b"), "\(refusals)")
        XCTAssertTrue(refusals.contains { $0.hasPrefix("move to 'elsewhere' refused") && $0.contains("held: audit 7b") }, "\(refusals)")

        // Shown everywhere, and kept across a reopen: the hold is in the catalog.
        let reopened = try Store.open(at: w.storeURL)
        XCTAssertEqual(try reopened.report(held).hold?.reason, "audit 7b")
        XCTAssertEqual(try reopened.report(held).notDeletableBecause, "held: audit 7b")
        XCTAssertEqual(try reopened.summaries().filter(\.held).map(\.name), [held])

        XCTAssertEqual(try reopened.release(held)?.reason, "audit 7b")
        XCTAssertNil(try reopened.release(held), "releasing what is not held changes nothing")
        XCTAssertNoThrow(try reopened.rename(held, to: "elsewhere"))
        XCTAssertEqual(try reopened.delete("elsewhere").snapshot, "elsewhere")
        XCTAssertEqual(try reopened.events().filter { $0.type == "hold" || $0.type == "release" }.count, 3)
    }

    func testBadHoldsAreRefusedByNameAndChangeNothing() throws {
        let (w, snaps) = try fiveRounds()
        let g = w.store.generation()
        for bad in ["", "   ", "two\nlines", "tab\there", String(repeating: "x", count: 1025)] {
            XCTAssertThrowsStoreError(try w.store.hold(snaps[0].name, reason: bad)) { if case .badInput = $0 { return true } else { return false } }
        }
        XCTAssertThrowsStoreError(try w.store.hold("missing", reason: "x")) { $0 == .noSuchSnapshot("missing") }
        XCTAssertThrowsStoreError(try w.store.release("missing")) { $0 == .noSuchSnapshot("missing") }
        XCTAssertEqual(w.store.generation(), g)
        XCTAssertEqual(try w.store.hold(snaps[0].name, reason: "from echo\n"), nil)
        XCTAssertEqual(try w.store.hold(of: snaps[0].name)?.reason, "from echo", "one trailing newline is dropped")
    }

    func testPruneDryRunEqualsTheRealPruneAndFiltersByKind() throws {
        let (w, snaps) = try fiveRounds()
        let before = fileSizes(under: w.storeURL.path + "/objects")
        // Checkpoints only: the newest checkpoint stays by the rule, user snapshots are not considered.
        let dry = try w.store.prune(RetentionPolicy(last: 1), kind: .checkpoint, dryRun: true)
        XCTAssertEqual(dry.decisions.map(\.name), [snaps[2].name, snaps[1].name, snaps[0].name])
        XCTAssertEqual(dry.plan.snapshots, [snaps[1].name, snaps[0].name])
        XCTAssertEqual(fileSizes(under: w.storeURL.path + "/objects"), before)
        let real = try w.store.prune(RetentionPolicy(last: 1), kind: .checkpoint, dryRun: false)
        XCTAssertEqual(real.decisions, dry.decisions)
        var undry = dry.plan
        undry.dryRun = false
        XCTAssertEqual(real.plan, undry)
        let after = fileSizes(under: w.storeURL.path + "/objects")
        XCTAssertEqual(before.values.reduce(0, +) - after.values.reduce(0, +), dry.plan.bytesFreed)
        XCTAssertEqual(try w.store.snapshots().map(\.name), [snaps[2].name, snaps[3].name, snaps[4].name])
        XCTAssertThrowsStoreError(try w.store.prune(RetentionPolicy(), dryRun: false)) { if case .badInput = $0 { return true } else { return false } }
        XCTAssertThrowsStoreError(try w.store.prune(RetentionPolicy(last: 1), job: "nope", dryRun: true)) { if case .badInput = $0 { return true } else { return false } }
    }
}
