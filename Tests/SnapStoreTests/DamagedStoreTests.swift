import Foundation
import GRDB
@testable import SnapStore
import XCTest
#if canImport(Glibc)
import Glibc
#endif

/// A store someone damaged, or a directory that only looks like one, is refused before anything reads it as "no
/// snapshots" and garbage-collects the objects.
final class DamagedStoreTests: XCTestCase {
    private func storeWithObjects() throws -> Workspace {
        let w = try Workspace()
        try w.write("a/one", "one")
        try w.write("two", "two")
        _ = try SnapshotBuilder(store: w.store).build(from: FileTreeSource(root: w.state), format: .nativeFull, kind: .user, label: "s1")
        return w
    }

    private func objectFiles(_ w: Workspace) -> [String] {
        (FileManager.default.enumerator(atPath: w.storeURL.path + "/objects")?.allObjects as? [String] ?? []).sorted()
    }

    func testZeroLengthCatalogIsDamaged() throws {
        let w = try storeWithObjects()
        let before = objectFiles(w)
        XCTAssertFalse(before.isEmpty)
        let catalog = w.storeURL.appendingPathComponent("catalog.sqlite").path
        for suffix in ["-wal", "-shm"] { unlink(catalog + suffix) }
        XCTAssertEqual(truncate(catalog, 0), 0)
        XCTAssertThrowsStoreError(try Store.open(at: w.storeURL)) { if case .corrupt(let m) = $0 { return m.contains("empty") }; return false }
        XCTAssertEqual(objectFiles(w), before)
    }

    func testMissingCatalogBesideObjectsIsDamagedAndAPlainDirectoryIsNotAStore() throws {
        let w = try storeWithObjects()
        let catalog = w.storeURL.appendingPathComponent("catalog.sqlite").path
        for suffix in ["", "-wal", "-shm"] { unlink(catalog + suffix) }
        XCTAssertThrowsStoreError(try Store.open(at: w.storeURL)) { $0.exitCode == 7 }
        let plain = w.root.appendingPathComponent("plain")
        try FileManager.default.createDirectory(at: plain, withIntermediateDirectories: true)
        XCTAssertThrowsStoreError(try Store.open(at: plain)) { $0.exitCode == 2 }
    }

    func testForeignDatabaseIsDamagedAndLeftAsItWas() throws {
        let w = try storeWithObjects()
        let catalog = w.storeURL.appendingPathComponent("catalog.sqlite")
        for suffix in ["", "-wal", "-shm"] { unlink(catalog.path + suffix) }
        let q = try DatabaseQueue(path: catalog.path)
        try q.write { try $0.execute(sql: "CREATE TABLE accounts(id INTEGER PRIMARY KEY, owner TEXT)") }
        try q.close()
        let bytes = try Data(contentsOf: catalog)
        XCTAssertThrowsStoreError(try Store.open(at: w.storeURL)) { if case .corrupt(let m) = $0 { return m.contains("not a SnapFS catalog") }; return false }
        XCTAssertEqual(try Data(contentsOf: catalog), bytes, "no migration ran on someone else's database")
        try Data((0..<8192).map { UInt8(truncatingIfNeeded: $0 &* 31) }).write(to: catalog)
        XCTAssertThrowsStoreError(try Store.open(at: w.storeURL)) { $0.exitCode == 7 }
    }

    func testCreateRefusesANonEmptyDirectory() throws {
        let root = URL(fileURLWithPath: NSTemporaryDirectory()).appendingPathComponent("snapfs-nonempty-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: root) }
        try FileManager.default.createDirectory(at: root.appendingPathComponent("objects"), withIntermediateDirectories: true)
        try Data("mine".utf8).write(to: root.appendingPathComponent("objects/mine.txt"))
        XCTAssertThrowsStoreError(try Store.create(at: root, engine: "local")) { $0.exitCode == 2 }
        XCTAssertFalse(FileManager.default.fileExists(atPath: root.appendingPathComponent("catalog.sqlite").path))
        XCTAssertEqual(try String(contentsOf: root.appendingPathComponent("objects/mine.txt"), encoding: .utf8), "mine")
    }

    /// SQLite's result codes map to what a user can act on: a full disk is I/O (exit 8, ENOSPC), a lock is busy
    /// (exit 5, EBUSY), only damage is damage (exit 7).
    func testCatalogErrorsKeepTheirCause() {
        func wrap(_ code: ResultCode) -> StoreError { StoreError.wrap(DatabaseError(resultCode: code, message: "m"), "cannot x") }
        XCTAssertEqual(wrap(.SQLITE_FULL).exitCode, 8)
        XCTAssertEqual(wrap(.SQLITE_FULL).errno, ENOSPC)
        XCTAssertTrue(wrap(.SQLITE_FULL).description.contains("No space left on device"), wrap(.SQLITE_FULL).description)
        XCTAssertEqual(wrap(.SQLITE_BUSY).exitCode, 5)
        XCTAssertEqual(wrap(.SQLITE_BUSY).errno, EBUSY)
        XCTAssertEqual(wrap(.SQLITE_LOCKED).exitCode, 5)
        XCTAssertEqual(wrap(ResultCode(rawValue: 5 | (2 << 8))).exitCode, 5, "extended BUSY codes too")
        XCTAssertEqual(wrap(.SQLITE_IOERR).exitCode, 8)
        XCTAssertEqual(wrap(.SQLITE_READONLY).errno, EROFS)
        XCTAssertEqual(wrap(.SQLITE_CORRUPT).exitCode, 7)
        XCTAssertEqual(wrap(.SQLITE_NOTADB).exitCode, 7)
        XCTAssertEqual(StoreError.wrap(CocoaError(.fileWriteOutOfSpace), "cannot y").errno, ENOSPC)
    }

    /// A catalog another process holds locked longer than a write waits: busy (exit 5, EBUSY), not damage.
    func testALockedCatalogIsBusyNotDamaged() throws {
        let w = try Workspace()
        let patient = try Store.open(at: w.storeURL, creating: false, busyTimeout: 0.2)
        // Another process (the sqlite3 shell) takes the write lock and holds it until told to let go.
        let other = Process()
        other.executableURL = URL(fileURLWithPath: "/usr/bin/sqlite3")
        other.arguments = [w.storeURL.appendingPathComponent("catalog.sqlite").path]
        let input = Pipe(), output = Pipe()
        other.standardInput = input; other.standardOutput = output
        try other.run()
        input.fileHandleForWriting.write(Data("BEGIN EXCLUSIVE;\nINSERT INTO meta(key, value) VALUES ('held', '1');\nSELECT 'locked';\n".utf8))
        XCTAssertEqual(String(decoding: output.fileHandleForReading.availableData, as: UTF8.self), "locked\n")
        XCTAssertThrowsStoreError(try patient.setMeta("x", "1")) { e in
            e.exitCode == 5 && e.errno == EBUSY && e.description.contains("locked")
        }
        input.fileHandleForWriting.write(Data("ROLLBACK;\n".utf8))
        try input.fileHandleForWriting.close()
        other.waitUntilExit()
        XCTAssertNoThrow(try patient.setMeta("x", "1"))
    }

    /// Owner-only, as a restic repository: directories 0700 and files 0600, whatever the umask.
    func testStoreFilesAreOwnerOnlyWhateverTheUmask() throws {
        let old = umask(0)
        defer { umask(old) }
        let w = try Workspace()
        try w.write("a/one", "one")
        try w.write("two", "two")
        _ = try SnapshotBuilder(store: w.store).build(from: FileTreeSource(root: w.state), format: .nativeFull, kind: .user, label: "full")
        _ = try SnapshotBuilder(store: w.store).build(from: FileTreeSource(root: w.state), format: .canonical, kind: .user, label: "canon")
        var checked = 0
        var st = stat()
        XCTAssertEqual(stat(w.storeURL.path, &st), 0)
        XCTAssertEqual(st.st_mode & 0o777, 0o700, "the store directory")
        let en = FileManager.default.enumerator(atPath: w.storeURL.path)!
        while let rel = en.nextObject() as? String {
            XCTAssertEqual(lstat(w.storeURL.path + "/" + rel, &st), 0)
            let want: mode_t = (st.st_mode & S_IFMT) == S_IFDIR ? 0o700 : 0o600
            XCTAssertEqual(st.st_mode & 0o777, want, "\(rel) is \(String(st.st_mode & 0o777, radix: 8))")
            checked += 1
        }
        XCTAssertGreaterThan(checked, 8)
    }

    func testASnapshotRecordsItsStateRootsModeAndOwner() throws {
        let w = try Workspace()
        try w.write("x", "x")
        XCTAssertEqual(chmod(w.state.path, 0o750), 0)
        XCTAssertEqual(chown(w.state.path, 1234, 5678), 0)
        let s = try SnapshotBuilder(store: w.store).build(from: FileTreeSource(root: w.state), format: .nativeFull, kind: .user, label: "s")
        var st = stat()
        XCTAssertEqual(stat(w.state.path, &st), 0)
        let want = RootOwnership(mode: 0o750, uid: 1234, gid: 5678, mtimeNanos: Int64(st.st_mtim.tv_sec) * 1_000_000_000 + Int64(st.st_mtim.tv_nsec))
        XCTAssertEqual(s.root, want)
        let reopened = try Store.open(at: w.storeURL)
        XCTAssertEqual(try reopened.snapshot(named: "s").root, want)
        let converted = try reopened.convert("s", to: .canonical, label: "c")
        XCTAssertEqual(converted.root, s.root, "a conversion keeps who may enter")
    }
}
