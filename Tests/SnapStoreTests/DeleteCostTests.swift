import Foundation
@testable import SnapStore
import Synchronization
import XCTest

/// A delete costs the catalog a fixed number of statements, whatever the number of objects it removes: the plan,
/// the journal and the drain each take the whole set at once.
final class DeleteCostTests: XCTestCase {
    private final class Statements: Sendable { let list = Mutex<[String]>([]) }

    /// Statements a delete of a snapshot holding `files` objects of its own runs, and the objects it removed.
    private func deleteStatements(files: Int) throws -> (statements: [String], removed: Int, left: [String]) {
        let w = try Workspace()
        let old = try commitSnapshot(w.store, files: files, tag: "old")
        _ = try commitSnapshot(w.store, files: 1, tag: "new")  // the recovery point

        let catalog = w.storeURL.appendingPathComponent(Catalog.fileName).standardizedFileURL.path
        let seen = Statements()
        Catalog.statementObservers.withLock { $0[catalog] = { sql in seen.list.withLock { $0.append(sql) } } }
        defer { _ = Catalog.statementObservers.withLock { $0.removeValue(forKey: catalog) } }
        let store = try Store.open(at: w.storeURL)
        seen.list.withLock { $0.removeAll() }
        let summary = try store.delete(old.name)
        let statements = seen.list.withLock { $0 }
        return (statements, summary.removedObjects, w.filesUnder(Store.objectsDirectory))
    }

    /// A snapshot of `files` objects of its own, committed through the store's ordinary path (the objects' bytes
    /// written as the builder would, without its per-file flushes, which would dominate the test).
    private func commitSnapshot(_ store: Store, files: Int, tag: String) throws -> Snapshot {
        let pending = try store.beginSnapshot(label: nil, kind: .checkpoint, format: .nativeIncremental)
        let paths = (0..<files).map { (path: "\(Store.objectsDirectory)/\(tag)/\($0 % 50)/o\($0)", size: Int64(0)) }
        let ids = try pending.reserveObjects(paths)
        for p in paths {
            let url = store.root.appendingPathComponent(p.path)
            try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
            try Data().write(to: url)
        }
        let entries = zip(paths, ids).enumerated().map { i, pair in
            NewEntry(path: "f\(i)", type: .file, size: 0, mode: UInt32(S_IFREG) | 0o644, mtimeNanos: 0, object: pair.1)
        }
        let empty = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        return try pending.commit(entries: entries, checksums: Dictionary(uniqueKeysWithValues: ids.map { ($0, (Int64(0), empty)) }))
    }

    func testDeleteStatementsDoNotGrowWithObjects() throws {
        let small = try deleteStatements(files: 100)
        let large = try deleteStatements(files: 10_000)
        print("catalog statements of a delete: \(small.statements.count) for 100 objects, \(large.statements.count) for 10,000")
        XCTAssertEqual(small.removed, 100)
        XCTAssertEqual(large.removed, 10_000)
        XCTAssertEqual(small.left.count, 1, "only the recovery point's object stays")
        XCTAssertEqual(large.left.count, 1, "only the recovery point's object stays")
        XCTAssertGreaterThan(small.statements.count, 0, "the observer saw the delete")
        XCTAssertLessThanOrEqual(large.statements.count, small.statements.count,
                                 "100 objects: \(small.statements.count) statements, 10,000: \(large.statements.count)\n"
                                 + large.statements.joined(separator: "\n"))
    }

    /// A path journalled for removal that the catalog took back as an object before the drain stays on disk.
    func testDrainKeepsAPathTakenBackAsAnObject() throws {
        let w = try Workspace()
        try w.write("a", "first")
        try w.write("b", "second")
        let old = try w.snapshot()
        let paths = try w.store.entries(of: old.id).compactMap(\.objectPath).sorted()
        XCTAssertEqual(paths.count, 2)
        try w.store.db.write { db in
            try db.execute(sql: "INSERT INTO removals(path, is_directory, queued_at) VALUES (?, 0, 0), (?, 0, 0), ('objects/zz/never-there', 0, 0)",
                           arguments: [paths[0], paths[1]])
        }
        try w.store.db.write { db in try db.execute(sql: "DELETE FROM entries WHERE object_id = (SELECT id FROM objects WHERE path = ?)", arguments: [paths[1]]) }
        try w.store.db.write { db in try db.execute(sql: "DELETE FROM objects WHERE path = ?", arguments: [paths[1]]) }
        w.store.drainRemovals()
        XCTAssertTrue(FileManager.default.fileExists(atPath: w.storeURL.path + "/" + paths[0]), "an object again: kept")
        XCTAssertFalse(FileManager.default.fileExists(atPath: w.storeURL.path + "/" + paths[1]), "no object: removed")
        let left = try w.store.db.read { try Int.fetchOne($0, sql: "SELECT COUNT(*) FROM removals") }
        XCTAssertEqual(left, 0, "every journal row is done")
    }
}
