import Foundation
import GRDB
@testable import SnapStore
import Synchronization
import XCTest

/// A state directory that runs `action` once, when the builder starts copying its first file: the instant between
/// an incremental snapshot's decision to reuse its base's objects and its commit.
final class InterruptedSource: SnapshotSource {
    let inner: FileTreeSource
    let action: @Sendable () -> Void
    let fired = Mutex(false)

    init(inner: FileTreeSource, action: @escaping @Sendable () -> Void) {
        self.inner = inner
        self.action = action
    }

    var description: String { inner.description }
    var allowsReuse: Bool { inner.allowsReuse }
    func scan() throws(StoreError) -> [SourceEntry] { try inner.scan() }
    func read(_ entry: SourceEntry, into sink: (UnsafeRawBufferPointer) throws -> Void) throws -> SourceEntry {
        if fired.withLock({ was in defer { was = true }; return !was }) { action() }
        return try inner.read(entry, into: sink)
    }
}

/// Deletes that commit while a snapshot is being written: the snapshot never fails for it, no file a snapshot
/// needs goes, and nothing is left behind that `verify` would not see.
final class ConcurrentDeleteTests: XCTestCase {
    /// The soak's failure: a native-incremental snapshot reuses its base's objects, the base is deleted while the
    /// snapshot copies its changed files, and the commit referenced objects the delete had removed.
    func testIncrementalSnapshotSurvivesTheDeleteOfItsBase() throws {
        let w = try Workspace(job: false)
        for i in 0..<10 { try w.write("seg-\(i)", String(repeating: "s\(i)", count: 400)) }
        let base = try w.snapshot(label: "base")
        try w.write("seg-0", "changed, so there is something to copy")
        let want = try w.stateChecksums()
        let store = w.store
        let deleted = Mutex<DeleteSummary?>(nil)
        let source = InterruptedSource(inner: FileTreeSource(root: w.state)) {
            deleted.withLock { $0 = try? store.delete("base") }
        }
        let s = try SnapshotBuilder(store: store).build(from: source, format: .nativeIncremental, kind: .checkpoint, label: "next", base: base)

        let sum = try XCTUnwrap(deleted.withLock { $0 }, "the base was deleted while the snapshot was written")
        XCTAssertEqual(sum.removedObjects, 1, "only the old seg-0 was the base's alone: the 9 it shares are pinned")
        XCTAssertEqual(sum.keptShared, 9)
        XCTAssertEqual(try w.contentChecksums(s.name), want)
        let v = try store.verify()
        XCTAssertTrue(v.clean, "\(v)")
        XCTAssertEqual(try pinCount(w), 0, "the commit released its pins")
        XCTAssertEqual(w.filesUnder("objects").count, 10, "exactly what 'next' references")
        _ = try store.delete("next")
        XCTAssertEqual(w.filesUnder("objects"), [], "pinned objects go with the last snapshot that holds them")
    }

    /// A snapshot that fails after its base was deleted leaves no object behind that nothing references.
    func testRollbackAfterTheBaseWentRemovesWhatItHeld() throws {
        let w = try Workspace(job: false)
        for i in 0..<5 { try w.write("seg-\(i)", String(repeating: "r\(i)", count: 300)) }
        let base = try w.snapshot(label: "base")
        let pending = try w.store.beginSnapshot(label: "doomed", kind: .checkpoint, format: .nativeIncremental)
        let reused = try pending.reuseObjects(from: base.id) { _, _, _ in true }
        XCTAssertEqual(reused.count, 5)
        let d = try w.store.delete("base")
        XCTAssertEqual(d.removedObjects, 0, "all five are pinned by the snapshot being written")
        XCTAssertEqual(w.filesUnder("objects").count, 5)
        pending.abort("failed for the test")
        XCTAssertEqual(w.filesUnder("objects"), [], "released and unreferenced: removed as the delete would have")
        XCTAssertEqual(try w.store.objects().count, 0)
        XCTAssertEqual(try pinCount(w), 0)
        XCTAssertTrue(try w.store.verify().clean)
    }

    /// A base deleted before the snapshot decides what to reuse shares nothing: every file is copied.
    func testBaseGoneBeforeTheDecisionSharesNothing() throws {
        let w = try Workspace(job: false)
        for i in 0..<4 { try w.write("seg-\(i)", "content \(i)") }
        let base = try w.snapshot(label: "base")
        _ = try w.store.delete("base")
        let s = try SnapshotBuilder(store: w.store).build(from: FileTreeSource(root: w.state), format: .nativeIncremental,
                                                          kind: .checkpoint, label: "after", base: base)
        XCTAssertEqual(try w.contentChecksums(s.name), try w.stateChecksums())
        XCTAssertTrue(try w.store.verify().clean)
    }

    /// A writer that died holding pins: reopening rolls its snapshot back, releases its pins, and removes the
    /// reused objects whose other holders were deleted meanwhile.
    func testDeadWritersPinsAreReleasedByRecover() throws {
        let w = try Workspace(job: false)
        for i in 0..<3 { try w.write("seg-\(i)", "held \(i)") }
        let base = try w.snapshot(label: "base")
        try w.write("keep", "a newer file")
        _ = try w.snapshot(.nativeFull, kind: .user, label: "other")
        // What a process killed after pinning leaves: its 'writing' row, owned by a token no one holds, and its pins.
        let db = try DatabaseQueue(path: w.storeURL.appendingPathComponent("catalog.sqlite").path)
        try db.write { db in
            try db.execute(sql: "PRAGMA foreign_keys = ON")
            try db.execute(sql: """
                INSERT INTO snapshots(name, kind, format, state, engine, created_at, owner)
                VALUES ('writing-dead', 'checkpoint', 'native-incremental', 'writing', 'local', 0, '1-dead')
                """)
            let dead = db.lastInsertedRowID
            try db.execute(sql: """
                INSERT INTO object_pins(snapshot_id, object_id, kind)
                SELECT ?, object_id, 'reuse' FROM entries WHERE snapshot_id = ? AND object_id IS NOT NULL
                """, arguments: [dead, base.id])
        }
        let pinned = try pinCount(w)
        XCTAssertEqual(pinned, 3)
        let d = try w.store.delete("base")
        XCTAssertEqual(d.removedObjects, 0, "pinned by a writer not yet known to be dead")
        try w.store.recover()
        XCTAssertEqual(try pinCount(w), 0)
        XCTAssertEqual(try w.store.snapshots(includingWriting: true).map(\.name), ["other"])
        let v = try w.store.verify()
        XCTAssertTrue(v.clean, "\(v)")
        let referenced = Set(try w.store.entries(of: try w.store.snapshot(named: "other").id).compactMap(\.object))
        XCTAssertEqual(Set(try w.store.objects().map(\.id)), referenced, "no object row is left that nothing references")
        XCTAssertEqual(w.filesUnder("objects").count, referenced.count)
    }

    /// Many rounds of an incremental snapshot racing the delete of its base, on threads.
    func testSnapshotsRacingDeletesOfTheirBase() throws {
        let w = try Workspace(job: false)
        for i in 0..<30 { try w.write("seg-\(i)", String(repeating: "z\(i)", count: 2000)) }
        for round in 0..<20 {
            let base = try w.snapshot(label: "base-\(round)")
            try w.write("seg-\(round % 30)", "round \(round)")
            let store = w.store
            let deleter = Thread { _ = try? store.delete("base-\(round)") }
            deleter.start()
            let s = try SnapshotBuilder(store: store).build(from: FileTreeSource(root: w.state), format: .nativeIncremental,
                                                            kind: .checkpoint, label: "next-\(round)", base: base)
            while deleter.isExecuting || !deleter.isFinished { usleep(1000) }
            XCTAssertEqual(try w.contentChecksums(s.name), try w.stateChecksums(), "round \(round)")
            _ = try? store.delete("base-\(round)")
            _ = try store.delete(s.name)
        }
        let v = try w.store.verify()
        XCTAssertTrue(v.clean, "\(v)")
        XCTAssertEqual(try pinCount(w), 0)
    }

    /// The recovery point is settled in the delete's own transaction: a snapshot that completes after the engine
    /// was asked and before the delete commits is the new recovery point, and is refused as one.
    func testSnapshotCompletingDuringADeleteIsProtectedAsTheRecoveryPoint() throws {
        let w = try Workspace(job: true)
        try w.write("a", "1")
        _ = try w.snapshot(label: "A")
        try w.write("a", "2")
        let pending = try w.store.beginSnapshot(label: "B", kind: .checkpoint, format: .nativeFull)
        let ids = try pending.reserveObjects([("objects/b/only-b", 1)])
        try FileManager.default.createDirectory(at: w.storeURL.appendingPathComponent("objects/b"), withIntermediateDirectories: true)
        try Data("2".utf8).write(to: w.storeURL.appendingPathComponent("objects/b/only-b"))
        let completeB = OneShot {
            _ = try? pending.commit(entries: [NewEntry(path: "a", type: .file, size: 1, mode: 0o100644, mtimeNanos: 0, object: ids[0])],
                                    checksums: [ids[0]: (1, Store.sha256(ofFile: w.storeURL.appendingPathComponent("objects/b/only-b").path)!)])
        }
        // The engine answers from the catalog as it was, and B completes right after.
        w.store.setHooks(AnsweringThenCompleting(completeB))
        XCTAssertThrowsStoreError(try w.store.delete("B")) {
            $0 == .busy(snapshot: "B", reason: "recovery point: newer snapshot needed first")
        }
        XCTAssertEqual(try w.store.snapshots().map(\.name), ["A", "B"])
        XCTAssertTrue(try w.store.verify().clean)
    }

    private func pinCount(_ w: Workspace) throws -> Int {
        let db = try DatabaseQueue(path: w.storeURL.appendingPathComponent("catalog.sqlite").path)
        return try db.read { try Int.fetchOne($0, sql: "SELECT COUNT(*) FROM object_pins") ?? -1 }
    }
}

/// Runs an action once, from whichever thread asks first.
final class OneShot: @unchecked Sendable {
    private let lock = NSLock()
    private var action: (() -> Void)?
    init(_ action: @escaping () -> Void) { self.action = action }
    func fire() {
        lock.lock()
        let a = action
        action = nil
        lock.unlock()
        a?()
    }
}

/// The default engine rule, but the first answer is followed at once by `then`: a snapshot completing between the
/// engine's answer and the delete's transaction.
struct AnsweringThenCompleting: EngineHooks {
    let then: OneShot
    init(_ then: OneShot) { self.then = then }
    func jobStatus(of store: Store) -> JobStatus {
        let status = DefaultHooks().jobStatus(of: store)
        then.fire()
        return status
    }
    func checkMove(_ snapshot: Snapshot, to newName: String, in store: Store) throws(StoreError) {}
}
