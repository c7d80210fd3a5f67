import FlinkFixtures
import Foundation
import SnapStore
import XCTest

/// `mv` of Flink snapshots through a real mount: a self-contained savepoint moves with its directory on disk, a
/// checkpoint is refused (EPERM) and the recorded reason names `convert --to self-contained`.
final class FlinkMoveMountTests: MountTestCase {
    func testMvOfASavepointRenamesItsDirectoryAndACheckpointIsRefused() throws {
        try FileManager.default.removeItem(at: w.storeDir)
        try FileManager.default.moveItem(at: try FlinkFixtures.copy(store: 1), to: w.storeDir)
        let created = w.snapfs(["init", w.s, "--engine", "flink", "--path-map", "\(FlinkFixtures.writtenAt)=\(w.s)"])
        XCTAssertTrue(created.ok, created.summary)
        try w.mount()

        let mv = Command.run("/bin/mv", [w.m + "/savepoint-c4f302-a3c72ffbb47e", w.m + "/before-upgrade"])
        XCTAssertTrue(mv.ok, mv.summary)
        XCTAssertTrue(w.rootNames().contains("before-upgrade"))
        XCTAssertFalse(w.rootNames().contains("savepoint-c4f302-a3c72ffbb47e"))
        XCTAssertFalse(FileManager.default.fileExists(atPath: w.s + "/savepoints/savepoint-c4f302-a3c72ffbb47e"))
        let metadata = "savepoints/before-upgrade/_metadata"
        XCTAssertTrue(FileManager.default.fileExists(atPath: w.s + "/" + metadata))
        // Through the mount, under the new name, the directory on disk: a self-contained savepoint already is Flink's
        // relocatable layout, so the mount shows its files and its own `_metadata`, byte for byte.
        let listed = Command.sh("cd \(shellQuote(w.m + "/before-upgrade")) && ls | sort")
        XCTAssertTrue(listed.ok, listed.summary)
        XCTAssertEqual(listed.out.split(separator: "\n").map(String.init),
                       try FileManager.default.contentsOfDirectory(atPath: w.s + "/savepoints/before-upgrade").sorted())
        for file in try FileManager.default.contentsOfDirectory(atPath: w.s + "/savepoints/before-upgrade") {
            let cmp = Command.run("/usr/bin/cmp", [w.m + "/before-upgrade/" + file, w.s + "/savepoints/before-upgrade/" + file])
            XCTAssertTrue(cmp.ok, cmp.summary)
        }
        let verify = w.snapfs(["verify", w.s])
        XCTAssertTrue(verify.out.contains("RESTORABLE     before-upgrade"), verify.summary)

        let refused = Command.run("/bin/mv", [w.m + "/c4f302-chk-13", w.m + "/keep-me"])
        XCTAssertFalse(refused.ok)
        XCTAssertTrue(refused.err.contains("Operation not permitted"), refused.summary)
        XCTAssertTrue(FileManager.default.fileExists(atPath: w.s + "/checkpoints/c4f302458e6451f29e233030dfe8535c/chk-13/_metadata"))
        let events = w.snapfs(["events", w.s]).out
        XCTAssertTrue(events.contains("snapfs convert c4f302-chk-13 --to self-contained"), events)
    }
}

/// `snapfs repair` while the store is mounted: the mount serves the repaired snapshot's new file set.
final class FlinkRepairMountTests: MountTestCase {
    func testTheMountServesTheRepairedFileSet() throws {
        try FileManager.default.removeItem(at: w.storeDir)
        try FileManager.default.moveItem(at: try FlinkFixtures.copy(store: 1), to: w.storeDir)
        // A CLAIM-restored job's checkpoint holding the savepoint's relative handles (FLINK-39964).
        let savepoint = "savepoints/savepoint-c4f302-a3c72ffbb47e"
        let checkpoint = "checkpoints/0f0e0d0c0b0a09080706050403020100/chk-7"
        try FileManager.default.createDirectory(atPath: w.s + "/" + checkpoint, withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: w.s + "/" + savepoint + "/_metadata", toPath: w.s + "/" + checkpoint + "/_metadata")
        let created = w.snapfs(["init", w.s, "--engine", "flink", "--path-map", "\(FlinkFixtures.writtenAt)=\(w.s)"])
        XCTAssertTrue(created.ok, created.summary)
        let verify = w.snapfs(["verify", w.s, "--json"])
        let report = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(verify.out.utf8)) as? [String: Any], verify.summary)
        let row = try XCTUnwrap((report["snapshots"] as? [[String: Any]])?.first { $0["directory"] as? String == checkpoint })
        XCTAssertEqual(row["restorable"] as? Bool, false)
        let name = try XCTUnwrap(row["name"] as? String)
        try w.mount()

        // The checkpoint is shown relocatable: each file beside `_metadata` under the name its handle gives. Before
        // the repair its files are where Flink would look (its own chk-7), where they are not.
        let before = Command.sh("cd \(shellQuote(w.m + "/" + name)) && ls | sort")
        XCTAssertTrue(before.ok, before.summary)
        let shown = before.out.split(separator: "\n").map(String.init).filter { $0 != "_metadata" }
        XCTAssertFalse(shown.isEmpty, before.summary)
        for file in shown {
            XCTAssertTrue(storePathOf(w.m + "/" + name + "/" + file)?.hasPrefix(checkpoint + "/") == true, file)
            XCTAssertFalse(Command.run("/bin/cat", [w.m + "/" + name + "/" + file]).ok, "\(file) is not there before the repair")
        }
        let repaired = w.snapfs(["repair", w.s, name])
        XCTAssertTrue(repaired.ok, repaired.summary)

        // The daemon catches up with the catalog (within its poll interval; bounded wait, not a timing assertion):
        // the same names now read the savepoint's files, where the repaired handles point.
        var moved = false
        for _ in 0..<50 {
            moved = storePathOf(w.m + "/" + name + "/" + shown[0])?.hasPrefix(savepoint + "/") == true
            if moved { break }
            usleep(200_000)
        }
        XCTAssertTrue(moved, "the mount serves the repaired file set")
        let after = Command.sh("cd \(shellQuote(w.m + "/" + name)) && ls | sort")
        XCTAssertEqual(after.out, before.out, "one relocatable layout before and after: only where the bytes come from moved")
        for file in shown {
            let stored = try XCTUnwrap(storePathOf(w.m + "/" + name + "/" + file))
            XCTAssertTrue(stored.hasPrefix(savepoint + "/"), stored)
            let cmp = Command.run("/usr/bin/cmp", [w.m + "/" + name + "/" + file, w.s + "/" + stored])
            XCTAssertTrue(cmp.ok, cmp.summary)
        }
        // Its `_metadata` (relative handles, as the savepoint's own) is readable and names those files.
        let cmp = Command.run("/usr/bin/cmp", [w.m + "/" + name + "/_metadata", w.s + "/" + savepoint + "/_metadata"])
        XCTAssertTrue(cmp.ok, cmp.summary)
        // The store's own file list keeps the kept original.
        let files = w.snapfs(["show", w.s, name, "--files"])
        XCTAssertTrue(files.out.contains(checkpoint + "/_metadata.before-repair"), files.summary)
    }
}
