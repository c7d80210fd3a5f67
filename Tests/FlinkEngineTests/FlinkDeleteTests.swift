import FlinkEngine
import FlinkMetadata
import FlinkFixtures
import Foundation
import SnapStore
import XCTest

final class FlinkDeleteTests: XCTestCase {
    /// Deleting every snapshot of job A removes exactly the files that only A's snapshots needed (by the
    /// references Flink itself reports) and every one of A's snapshot directories; whatever another job still
    /// needs stays, and nothing that was restorable becomes unrestorable.
    func testDeletingJobARemovesOnlyFilesNoRemainingSnapshotNeeds() throws {
        for (number, jobA) in [(1, "c4f302458e6451f29e233030dfe8535c"), (2, "921f15d8c1373fc7cba72fc30b4e7851")] {
            // A was cancelled: its recovery point is no longer protected.
            let (w, fake) = try FlinkWorkspace.canceling([jobA], store: number)
            defer { fake.stop() }
            let before = try FlinkVerifier(store: w.store, settings: w.settings).verify()
            let isA = { (t: FlinkFixtures.Snapshot) in
                t.directory.contains("/\(jobA)/") || t.directory.contains("savepoint-\(jobA.prefix(6))-")
            }
            let aFiles = Set(w.truth.filter(isA).flatMap { $0.files.map { w.relative($0).path } } + w.truth.filter(isA).map { $0.directory + "/_metadata" })
            let keptFiles = Set(w.truth.filter { !isA($0) }.flatMap { $0.files.map { w.relative($0).path } } + w.truth.filter { !isA($0) }.map { $0.directory + "/_metadata" })
            let presentBefore = Set((aFiles.union(keptFiles)).filter(w.exists))

            let aSnapshots = try w.store.snapshots().filter { $0.job == jobA }
            XCTAssertEqual(aSnapshots.count, w.truth.filter(isA).count)
            var removed = 0
            for s in aSnapshots { removed += try w.store.delete(s.name).removedObjects }

            for p in presentBefore {
                let shouldExist = keptFiles.contains(p)
                XCTAssertEqual(w.exists(p), shouldExist, "store-\(number): \(p) \(shouldExist ? "still needed" : "only A needed it")")
            }
            XCTAssertEqual(removed, aFiles.subtracting(keptFiles).count, "store-\(number): objects removed")
            for t in w.truth where isA(t) { XCTAssertFalse(w.exists(t.directory), t.directory) }

            let after = try FlinkVerifier(store: w.store, settings: w.settings).verify()
            let restorableBefore = Set(before.snapshots.filter(\.restorable).map(\.name))
            XCTAssertEqual(Set(after.snapshots.filter(\.restorable).map(\.name)), restorableBefore.subtracting(aSnapshots.map(\.name)))
            XCTAssertEqual(after.pendingRemovals, 0)
        }
    }

    /// After a CLAIM or NO_CLAIM restore, a job's checkpoints read files in another job's `shared/` by absolute
    /// path. Here a checkpoint of a second job names exactly the files of A's chk-13 (as Flink writes them after
    /// such a restore): deleting all of A keeps every one of them and removes the rest of A.
    func testFilesAnotherJobNeedsSurviveDeletingJobA() throws {
        let jobA = "c4f302458e6451f29e233030dfe8535c"
        let (w, fake) = try FlinkWorkspace.canceling([jobA], store: 1)
        defer { fake.stop() }
        let other = "checkpoints/ffffff00000000000000000000000001/chk-99"
        try FileManager.default.createDirectory(at: w.root.appendingPathComponent(other), withIntermediateDirectories: true)
        try FileManager.default.copyItem(at: w.root.appendingPathComponent("checkpoints/\(jobA)/chk-13/_metadata"),
                                         to: w.root.appendingPathComponent(other + "/_metadata"))
        try w.importer.refresh()
        let needed = try w.store.entries(of: try w.store.snapshot(named: "ffffff-chk-99").id).filter { $0.type == .file }.map(\.path)
        XCTAssertEqual(needed.filter { $0.hasPrefix("checkpoints/\(jobA)/shared/") }.count, 12)
        for s in try w.store.snapshots() where s.job == jobA { try w.store.delete(s.name) }
        for p in needed { XCTAssertTrue(w.exists(p), p) }
        let report = try FlinkVerifier(store: w.store, settings: w.settings).verify()
        XCTAssertTrue(try XCTUnwrap(report.snapshots.first { $0.name == "ffffff-chk-99" }).restorable)
        XCTAssertFalse(w.exists("checkpoints/\(jobA)/chk-11"))
        XCTAssertFalse(w.exists("checkpoints/\(jobA)/chk-13"))
        // A's shared files that only A's chk-11 and chk-12 needed are gone.
        let aOnly = w.truth.filter { $0.directory.hasSuffix("/chk-11") || $0.directory.hasSuffix("/chk-12") }
            .flatMap { $0.files.map { w.relative($0).path } }.filter { !needed.contains($0) && $0.contains(jobA) }
        XCTAssertFalse(aOnly.isEmpty)
        for p in aOnly { XCTAssertFalse(w.exists(p), p) }
    }

    /// The recovery point of the configured job cannot be deleted while the job may run; without a reachable
    /// JobManager its newest snapshot stands in.
    func testRecoveryPointIsRefused() throws {
        for rest in [nil, "http://127.0.0.1:9"] as [String?] {
            let w = try FlinkWorkspace(store: 1, job: "dd758ebfe2c5e0335122d7ddaf752ba0", rest: rest)
            try w.importer.refresh()
            let status = w.store.jobStatus()
            XCTAssertTrue(status.running)
            XCTAssertEqual(status.recoveryPoint, "dd758e-chk-17")
            XCTAssertThrowsError(try w.store.delete("dd758e-chk-17")) { error in
                guard case StoreError.busy(let name, let reason)? = error as? StoreError else { return XCTFail("\(error)") }
                XCTAssertEqual(name, "dd758e-chk-17")
                XCTAssertTrue(reason.contains("recovery point"), reason)
                XCTAssertEqual((error as? StoreError)?.errno, EBUSY)
            }
            XCTAssertTrue(w.exists("checkpoints/dd758ebfe2c5e0335122d7ddaf752ba0/chk-17/_metadata"))
            // An older checkpoint of the same job is not the recovery point.
            XCTAssertNoThrow(try w.store.delete("dd758e-chk-15"))
        }
    }

    func testCheckpointsCannotMoveCanonicalSavepointsCan() throws {
        let w = try FlinkWorkspace(store: 1)
        try w.importer.refresh()
        XCTAssertThrowsError(try w.store.rename("c4f302-chk-13", to: "keep-me")) { error in
            guard case StoreError.notPermitted(let why)? = error as? StoreError else { return XCTFail("\(error)") }
            XCTAssertTrue(why.contains("checkpoint"), why)
        }
        XCTAssertNoThrow(try w.store.rename("savepoint-c4f302-a3c72ffbb47e", to: "before-upgrade"))
        // Its directory moves with it: every handle is relative, so Flink restores it from the new path.
        XCTAssertEqual(try w.store.snapshot(named: "before-upgrade").directory, "savepoints/before-upgrade")
        XCTAssertFalse(w.exists("savepoints/savepoint-c4f302-a3c72ffbb47e"))
        XCTAssertTrue(w.exists("savepoints/before-upgrade/_metadata"))
        // A later pass keeps the new name: snapshots are known by directory.
        XCTAssertEqual(try w.importer.refresh().added, [])
        XCTAssertNoThrow(try w.store.snapshot(named: "before-upgrade"))
    }

    /// Files a NO_CLAIM or CLAIM restore made two jobs share are refused for a move.
    func testSavepointWhoseFilesAnotherSnapshotNeedsCannotMove() throws {
        let w = try FlinkWorkspace(store: 2)
        try w.importer.refresh()
        // Any user snapshot whose files another snapshot also needs must be refused.
        for s in try w.store.snapshots() where s.kind == .user {
            let shared = try w.store.entries(of: s.id).contains { $0.type == .file && $0.links > 1 }
            if shared { XCTAssertThrowsError(try w.store.rename(s.name, to: "moved-\(s.id)")) }
        }
    }

    /// Flink refuses explicit incremental checkpoints (FLINK-33723); the request fails with that reason, recorded.
    func testIncrementalTriggerFailsWithFlinksReason() throws {
        let w = try FlinkWorkspace(store: 1, job: "dd758ebfe2c5e0335122d7ddaf752ba0", rest: "http://127.0.0.1:9")
        let engine = try FlinkEngine.forStore(w.store)
        let (request, result) = try w.store.requestSnapshot(engine: engine, format: .nativeIncremental, label: nil, source: "test")
        guard case .failure(let error) = result else { return XCTFail("incremental trigger succeeded") }
        XCTAssertEqual(error.errno, EIO)
        XCTAssertTrue(error.description.contains("FLINK-33723"), error.description)
        XCTAssertEqual(request.state, .failed)
        XCTAssertTrue(request.error?.contains("FLINK-33723") == true)
    }

    /// An unreachable JobManager fails a trigger with a reason, as EIO, and leaves the catalog as it was.
    func testTriggerWithoutJobManagerFailsCleanly() throws {
        let w = try FlinkWorkspace(store: 1, job: "dd758ebfe2c5e0335122d7ddaf752ba0", rest: "http://127.0.0.1:9")
        let engine = try FlinkEngine.forStore(w.store)
        try engine.importer.refresh()
        let count = try w.store.snapshots().count
        let (_, result) = try w.store.requestSnapshot(engine: engine, format: .canonical, label: "pre-upgrade", source: "test")
        guard case .failure(let error) = result else { return XCTFail("trigger succeeded without a cluster") }
        XCTAssertEqual(error.errno, EIO)
        XCTAssertTrue(error.description.contains("127.0.0.1:9"), error.description)
        XCTAssertEqual(try w.store.snapshots().count, count)
    }
}
