import Foundation
import SnapStore
import XCTest
#if canImport(Glibc)
import Glibc
#endif

/// Stores that are damaged, strange or not stores at all, through the command line: each is refused with the exit
/// code the README documents, and nothing in it is touched.
final class DamagedStoreCLITests: XCTestCase {
    /// A store with one snapshot, and the object files it holds.
    private func storeWithASnapshot(_ s: Scratch) throws -> (store: String, objects: Set<String>) {
        let state = s.path("state"), store = s.path("store")
        try FileManager.default.createDirectory(atPath: state + "/d", withIntermediateDirectories: true)
        try Data("alpha".utf8).write(to: URL(fileURLWithPath: state + "/d/a"))
        try Data("beta".utf8).write(to: URL(fileURLWithPath: state + "/b"))
        _ = try SnapFSTool.ok(["init", store, "--state", state])
        _ = try SnapFSTool.ok(["trigger", store, "--format", "native-full", "--label", "one"])
        _ = try SnapFSTool.ok(["trigger", store, "--format", "canonical", "--label", "two"])
        let objects = filesUnder(store + "/objects").union(filesUnder(store + "/canonical").map { "c/" + $0 })
        XCTAssertGreaterThanOrEqual(objects.count, 4)
        return (store, objects)
    }

    private func objects(_ store: String) -> Set<String> {
        filesUnder(store + "/objects").union(filesUnder(store + "/canonical").map { "c/" + $0 })
    }

    /// verify, gc (with no grace at all) and list, on a catalog that cannot be trusted: exit 7, files all there.
    private func assertDamagedAndUntouched(_ store: String, _ before: Set<String>, _ what: String, file: StaticString = #filePath, line: UInt = #line) throws {
        for args in [["verify", store], ["gc", store, "--grace", "0"], ["list", store]] {
            let r = try SnapFSTool.run(args)
            XCTAssertEqual(r.status, 7, "\(what): snapfs \(args.joined(separator: " ")): \(r.stdout) \(r.stderr)", file: file, line: line)
            XCTAssertTrue(r.stderr.contains("store damaged"), "\(what): \(r.stderr)", file: file, line: line)
        }
        XCTAssertEqual(objects(store), before, "\(what): gc removed nothing", file: file, line: line)
    }

    func testZeroLengthCatalogIsDamagedAndGCDeletesNothing() throws {
        let s = try Scratch()
        let (store, before) = try storeWithASnapshot(s)
        XCTAssertEqual(truncate(store + "/catalog.sqlite", 0), 0)
        try assertDamagedAndUntouched(store, before, "zero-length catalog")
    }

    func testMissingCatalogBesideObjectsIsDamaged() throws {
        let s = try Scratch()
        let (store, before) = try storeWithASnapshot(s)
        try FileManager.default.removeItem(atPath: store + "/catalog.sqlite")
        try assertDamagedAndUntouched(store, before, "missing catalog")
        let plain = s.path("plain")
        try FileManager.default.createDirectory(atPath: plain, withIntermediateDirectories: true)
        let r = try SnapFSTool.run(["gc", plain])
        XCTAssertEqual(r.status, 2, "a directory that never was a store is bad input: \(r.stderr)")
        XCTAssertTrue(r.stderr.contains("not a SnapFS store"), r.stderr)
    }

    func testForeignCatalogIsDamaged() throws {
        let s = try Scratch()
        let (store, before) = try storeWithASnapshot(s)
        try FileManager.default.removeItem(atPath: store + "/catalog.sqlite")
        let made = Process()
        made.executableURL = URL(fileURLWithPath: "/usr/bin/sqlite3")
        made.arguments = [store + "/catalog.sqlite", "CREATE TABLE notes(id INTEGER PRIMARY KEY, text TEXT); INSERT INTO notes(text) VALUES ('mine');"]
        try made.run(); made.waitUntilExit()
        XCTAssertEqual(made.terminationStatus, 0)
        let bytes = try Data(contentsOf: URL(fileURLWithPath: store + "/catalog.sqlite"))
        try assertDamagedAndUntouched(store, before, "someone else's SQLite database")
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: store + "/catalog.sqlite")), bytes, "the foreign database was not migrated")
        try Data(repeating: 0x5a, count: 16384).write(to: URL(fileURLWithPath: store + "/catalog.sqlite"))
        try assertDamagedAndUntouched(store, before, "not a database at all")
    }

    func testInitRefusesANonEmptyDirectoryThatIsNotAStore() throws {
        let s = try Scratch()
        let state = s.path("state"), dir = s.path("mine")
        try FileManager.default.createDirectory(atPath: state, withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: dir + "/objects", withIntermediateDirectories: true)
        try Data("my own file".utf8).write(to: URL(fileURLWithPath: dir + "/objects/notes.txt"))
        let r = try SnapFSTool.run(["init", dir, "--state", state])
        XCTAssertEqual(r.status, 2, r.stderr)
        XCTAssertTrue(r.stderr.contains("not empty"), r.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir + "/catalog.sqlite"))
        XCTAssertEqual(try String(contentsOfFile: dir + "/objects/notes.txt", encoding: .utf8), "my own file")
        // An empty directory is fine.
        try FileManager.default.createDirectory(atPath: s.path("empty"), withIntermediateDirectories: true)
        _ = try SnapFSTool.ok(["init", s.path("empty"), "--state", state])
    }

    func testStoreAndStateDirectoryMayNotNest() throws {
        let s = try Scratch()
        let state = s.path("state")
        try FileManager.default.createDirectory(atPath: state, withIntermediateDirectories: true)
        try Data("x".utf8).write(to: URL(fileURLWithPath: state + "/x"))
        var r = try SnapFSTool.run(["init", state + "/store", "--state", state])
        XCTAssertEqual(r.status, 2, r.stderr)
        XCTAssertTrue(r.stderr.contains("inside the state directory"), r.stderr)
        // The same through a symbolic link, and the state itself as the store.
        try FileManager.default.createSymbolicLink(atPath: s.path("alias"), withDestinationPath: state)
        r = try SnapFSTool.run(["init", s.path("alias") + "/store", "--state", state])
        XCTAssertEqual(r.status, 2, r.stderr)
        r = try SnapFSTool.run(["init", s.path("alias"), "--state", state])
        XCTAssertEqual(r.status, 2, r.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: state + "/store"))

        // A store made correctly, then mounted (or triggered) with a state directory that holds it or lies in it.
        let store = s.path("store"), mnt = s.path("mnt")
        try FileManager.default.createDirectory(atPath: mnt, withIntermediateDirectories: true)
        _ = try SnapFSTool.ok(["init", store, "--state", state])
        r = try SnapFSTool.run(["mount", store, mnt, "--state", s.root.path], timeout: 60)
        XCTAssertEqual(r.status, 2, r.stderr)
        XCTAssertTrue(r.stderr.contains("inside the state directory"), r.stderr)
        try FileManager.default.createDirectory(atPath: store + "/objects/inner", withIntermediateDirectories: true)
        r = try SnapFSTool.run(["mount", store, mnt, "--state", store + "/objects/inner"], timeout: 60)
        XCTAssertEqual(r.status, 2, r.stderr)
        XCTAssertTrue(r.stderr.contains("inside the store"), r.stderr)
        XCTAssertFalse(isMounted(mnt))
        // The setting recorded in the catalog is checked as well, not only the command line's.
        let edit = Process()
        edit.executableURL = URL(fileURLWithPath: "/usr/bin/sqlite3")
        edit.arguments = [store + "/catalog.sqlite", "UPDATE meta SET value = '\(s.root.path)' WHERE key = 'state_dir'"]
        try edit.run(); edit.waitUntilExit()
        r = try SnapFSTool.run(["trigger", store, "--label", "t"])
        XCTAssertEqual(r.status, 2, r.stderr)
        XCTAssertTrue(r.stderr.contains("inside the state directory"), r.stderr)
    }

    private func isMounted(_ path: String) -> Bool {
        ((try? String(contentsOfFile: "/proc/self/mountinfo", encoding: .utf8)) ?? "").contains(" \(path) ")
    }
}
