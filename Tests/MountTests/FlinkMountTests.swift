import FlinkFixtures
import Foundation
import SnapStore
import XCTest

/// A Flink store through the mount: files longer than Flink's handles say (changelog files, file-merging physical
/// files) reach a backup whole.
final class FlinkMountTests: MountTestCase {
    /// `tar` of every snapshot through the mount extracts byte-identical to the store's own files, changelog files
    /// (one byte longer than their handles) and shared physical files (longer than any snapshot's segments) included.
    func testTarOfEverySnapshotIsByteIdenticalToTheStore() throws {
        try FileManager.default.removeItem(at: w.storeDir)
        try FileManager.default.createDirectory(at: w.storeDir, withIntermediateDirectories: true)
        let truth = try SyntheticFlinkStore.write(at: w.storeDir)
        let created = w.snapfs(["init", w.s, "--engine", "flink", "--path-map", "\(SyntheticFlinkStore.writtenAt)=\(w.s)"])
        XCTAssertTrue(created.ok, created.summary)
        try w.mount()

        let dstl = "0a0a0a-chk-1/changelog/\(SyntheticFlinkStore.changelogJob)/dstl-1"
        let st = try FileManager.default.attributesOfItem(atPath: w.m + "/" + dstl)
        XCTAssertEqual(st[.size] as? Int, 101, "a changelog file is served at its own length, not its handle's (100)")

        let names = w.rootNames().filter { $0 != "latest" && $0 != "by-job" }
        XCTAssertEqual(names, ["0a0a0a-chk-1", "0a0a0a-chk-2", "0b0b0b-chk-1", "0b0b0b-chk-2"])
        for name in names {
            let out = w.root.appendingPathComponent("restored/\(name)").path
            try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
            let tar = Command.sh("tar -C \(shellQuote(w.m + "/" + name)) -cf - . | tar -C \(shellQuote(out)) -xf -")
            XCTAssertTrue(tar.ok, tar.summary)
            let restored = treeDigest(out).filter { !$0.value.hasPrefix("dir") }
            let directory = truth[["0a0a0a-chk-1", "0a0a0a-chk-2", "0b0b0b-chk-1", "0b0b0b-chk-2"].firstIndex(of: name)!].directory
            let expectedPaths = Set(truth.first { $0.directory == directory }!.files.map(\.path) + [directory + "/_metadata"])
            XCTAssertEqual(Set(restored.keys), expectedPaths, name)
            for path in expectedPaths {
                let original = w.s + "/" + path
                let size = (try FileManager.default.attributesOfItem(atPath: original)[.size] as? Int) ?? -1
                XCTAssertEqual(restored[path], "\(size):" + (Store.sha256(ofFile: original) ?? "?"), "\(name)/\(path)")
            }
        }

        // A later checkpoint appends segments to the shared physical file: the mount serves the new length and
        // bytes within a second, though the kernel had the file's pages cached.
        let physical = "checkpoints/\(SyntheticFlinkStore.mergingJob)/shared/physical-1"
        let through = w.m + "/0b0b0b-chk-1/" + physical
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: through)), try Data(contentsOf: URL(fileURLWithPath: w.s + "/" + physical)))
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: w.s + "/" + physical))
        try handle.seekToEnd()
        try handle.write(contentsOf: Data((0..<5000).map { UInt8(truncatingIfNeeded: $0 &* 31) }))
        try handle.close()
        usleep(1_500_000)
        let grown = try Data(contentsOf: URL(fileURLWithPath: through))
        XCTAssertEqual(grown.count, 5200)
        XCTAssertEqual(grown, try Data(contentsOf: URL(fileURLWithPath: w.s + "/" + physical)))
    }
}

/// The real stores of each state layout through the mount.
final class FlinkLayoutMountTests: MountTestCase {
    /// `tar` of every restorable snapshot through the mount extracts byte-identical to the store's own files.
    func testTarOfEverySnapshotOfEveryLayoutIsByteIdentical() throws {
        for layout in LayoutFixtures.layouts {
            let truth = try LayoutFixtures.truth(layout)
            w.unmount()
            try FileManager.default.removeItem(at: w.storeDir)
            try FileManager.default.moveItem(at: try LayoutFixtures.copy(layout, under: w.root), to: w.storeDir)
            let created = w.snapfs(["init", w.s, "--engine", "flink", "--path-map", "\(LayoutFixtures.writtenAt(layout))=\(w.s)"])
            XCTAssertTrue(created.ok, created.summary)
            try w.mount()
            let listed = w.snapfs(["list", w.s, "--json"])
            let rows = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(listed.out.utf8)) as? [[String: Any]], listed.summary)
            XCTAssertEqual(rows.count, truth.count, layout)
            let store = try w.openStore()
            var compared = 0
            for s in try store.snapshots() {
                guard let t = truth.first(where: { $0.directory == s.directory }), t.restorable else { continue }
                let out = w.root.appendingPathComponent("restored/\(layout)/\(s.name)").path
                try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
                let tar = Command.sh("tar -C \(shellQuote(w.m + "/" + s.name)) -cf - . | tar -C \(shellQuote(out)) -xf -")
                XCTAssertTrue(tar.ok, "\(layout) \(s.name): \(tar.summary)")
                let restored = treeDigest(out).filter { $0.value != "dir" }
                let expected = Set(t.files.map(\.path) + [t.directory + "/_metadata"])
                XCTAssertEqual(Set(restored.keys), expected, "\(layout) \(s.name)")
                for path in expected {
                    let original = w.s + "/" + path
                    let size = (try? FileManager.default.attributesOfItem(atPath: original)[.size] as? Int) ?? -1
                    XCTAssertEqual(restored[path], "\(size):" + (Store.sha256(ofFile: original) ?? "?"), "\(layout) \(s.name)/\(path)")
                }
                compared += 1
            }
            XCTAssertEqual(compared, truth.filter(\.restorable).count, layout)
            try FileManager.default.removeItem(atPath: w.root.appendingPathComponent("restored").path)
        }
    }
}
