import Foundation
import GRDB
import SnapStore
import XCTest

final class IntegrityTests: XCTestCase {
    func testVerifyFindsDamageAndGCRemovesOnlyUnreferencedFiles() throws {
        let w = try Workspace()
        try w.write("a", "alpha"); try w.write("b", "beta")
        let s = try w.snapshot()
        XCTAssertTrue(try w.store.verify().clean)
        let entries = try w.store.entries(of: s.id)
        let a = entries.first { $0.path == "a" }!, b = entries.first { $0.path == "b" }!
        try Data("ALPHA".utf8).write(to: w.store.url(ofObjectPath: a.objectPath!))
        try FileManager.default.removeItem(at: w.store.url(ofObjectPath: b.objectPath!))
        try Data("stray".utf8).write(to: w.storeURL.appendingPathComponent("objects/zz-stray"))
        let v = try w.store.verify()
        XCTAssertEqual(Set(v.problems.map(\.path)), [a.objectPath!, b.objectPath!])
        XCTAssertTrue(v.problems.contains { $0.problem == "missing" && $0.snapshots == [s.name] })
        XCTAssertTrue(v.problems.contains { $0.problem.hasPrefix("checksum") })
        XCTAssertEqual(v.unreferenced, ["objects/zz-stray"])
        let young = try w.store.gc(grace: 3600)
        XCTAssertEqual(young.keptYoungerThanGrace, ["objects/zz-stray"])
        let g = try w.store.gc(grace: 0)
        XCTAssertEqual(g.removedFiles, ["objects/zz-stray"])
        XCTAssertTrue(FileManager.default.fileExists(atPath: w.store.url(ofObjectPath: a.objectPath!).path), "gc never touches referenced objects")
    }

    func testCorruptCatalogRowIsAClearErrorAndChangesNothing() throws {
        let w = try Workspace()
        try w.write("a", "1")
        let s = try w.snapshot()
        let db = try DatabaseQueue(path: w.storeURL.appendingPathComponent("catalog.sqlite").path)
        try db.write { try $0.execute(sql: "PRAGMA ignore_check_constraints = ON; UPDATE snapshots SET kind = 'bogus' WHERE id = ?", arguments: [s.id]) }
        try db.close()
        let reopened = try Store.open(at: w.storeURL)
        XCTAssertThrowsStoreError(try reopened.snapshots()) { e in
            if case .corrupt(let m) = e { return m.contains("snapshot \(s.id)") && m.contains("bogus") }
            return false
        }
        XCTAssertThrowsStoreError(try reopened.delete(s.name)) { if case .corrupt = $0 { return true }; return false }
        XCTAssertEqual(w.filesUnder("objects").count, 1, "nothing removed")
    }

    func testExportIsPlainFilesCheckableWithoutSnapFSAndImportChecksEveryByte() throws {
        let w = try Workspace()
        try w.write("dir/one", "1"); try w.write("two", String(repeating: "2", count: 100_000))
        let s = try w.snapshot()
        let out = w.root.appendingPathComponent("export")
        _ = try w.store.export(s.name, to: out)
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/sha256sum")
        p.arguments = ["-c", "--quiet", "SHA256SUMS"]
        p.currentDirectoryURL = out
        try p.run(); p.waitUntilExit()
        XCTAssertEqual(p.terminationStatus, 0, "sha256sum -c accepts the export")

        let imported = try w.store.importCanonical(from: out, label: "back")
        XCTAssertEqual(imported.format, .canonical)
        XCTAssertEqual(try w.contentChecksums("back"), try w.stateChecksums())

        try Data("tampered".utf8).write(to: out.appendingPathComponent("files/two"))
        let before = try w.store.snapshots().count
        XCTAssertThrowsStoreError(try w.store.importCanonical(from: out, label: "bad")) { $0.description.contains("two") && $0.description.contains("checksum") }
        XCTAssertEqual(try w.store.snapshots().count, before)
        XCTAssertTrue(try w.store.verify().clean, "a failed import leaves nothing behind")
    }

    func testManifestPathThatLeavesTheSnapshotIsRefusedEvenBehindACombiningMark() throws {
        let w = try Workspace()
        try w.write("one", "1")
        let s = try w.snapshot()
        let out = w.root.appendingPathComponent("export")
        _ = try w.store.export(s.name, to: out)
        let manifest = out.appendingPathComponent("MANIFEST.json")
        let original = try String(contentsOf: manifest, encoding: .utf8)
        // "../\u{301}x" is a single Character-wise component, but ".." and "\u{301}x" to the kernel.
        for bad in ["../\u{301}x", "a/../../\u{301}x", "a/./\u{301}x", "a//\u{301}x"] {
            let escaped = bad.unicodeScalars.map { $0.isASCII ? String($0) : String(format: "\\u%04x", $0.value) }.joined()
            try original.replacingOccurrences(of: "\"path\" : \"one\"", with: "\"path\" : \"\(escaped)\"")
                .replacingOccurrences(of: "\"path\":\"one\"", with: "\"path\":\"\(escaped)\"")
                .write(to: manifest, atomically: true, encoding: .utf8)
            XCTAssertNotEqual(try String(contentsOf: manifest, encoding: .utf8), original, "the test rewrote the entry's path")
            let before = try w.store.snapshots().count
            XCTAssertThrowsStoreError(try w.store.importCanonical(from: out, label: "bad")) { $0.description.contains("leaves the snapshot") }
            XCTAssertEqual(try w.store.snapshots().count, before)
        }
    }

    func testConvertIncrementalToCanonicalIsSelfContained() throws {
        let w = try Workspace(job: false)
        try w.write("a", "1"); try w.write("b", "2")
        let s1 = try w.snapshot()
        try w.write("b", "3")
        let s2 = try w.snapshot()
        let want = try w.contentChecksums(s2.name)
        let c = try w.store.convert(s2.name, to: .canonical, label: "portable")
        try w.store.delete(s1.name)
        try w.store.delete(s2.name)
        XCTAssertEqual(try w.contentChecksums(c.name), want)
        XCTAssertTrue(try w.store.verify().clean)
        XCTAssertTrue(w.filesUnder("objects").isEmpty, "the canonical copy depends on no native object")
    }
}
