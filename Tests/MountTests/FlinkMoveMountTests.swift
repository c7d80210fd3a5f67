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
        // Through the mount, under the new name, the same bytes as the directory on disk.
        let listed = Command.sh("cd \(shellQuote(w.m + "/before-upgrade/savepoints/before-upgrade")) && ls | sort")
        XCTAssertTrue(listed.ok, listed.summary)
        XCTAssertEqual(listed.out.split(separator: "\n").map(String.init),
                       try FileManager.default.contentsOfDirectory(atPath: w.s + "/savepoints/before-upgrade").sorted())
        let cmp = Command.run("/usr/bin/cmp", [w.m + "/before-upgrade/" + metadata, w.s + "/" + metadata])
        XCTAssertTrue(cmp.ok, cmp.summary)
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

        let before = Command.sh("cd \(shellQuote(w.m + "/" + name)) && find . -type f | sort")
        XCTAssertTrue(before.ok, before.summary)
        XCTAssertFalse(before.out.contains(savepoint), before.out)
        let repaired = w.snapfs(["repair", w.s, name])
        XCTAssertTrue(repaired.ok, repaired.summary)

        // The daemon catches up with the catalog (within its poll interval; bounded wait, not a timing assertion).
        var after = Command.sh("true")
        for _ in 0..<50 {
            after = Command.sh("cd \(shellQuote(w.m + "/" + name)) && find . -type f | sort")
            if after.out.contains(savepoint) { break }
            usleep(200_000)
        }
        XCTAssertTrue(after.out.contains("./" + checkpoint + "/_metadata.before-repair"), after.summary)
        let files = after.out.split(separator: "\n").filter { $0.hasPrefix("./" + savepoint + "/") }
        XCTAssertFalse(files.isEmpty, after.summary)
        for file in files {
            let relative = String(file.dropFirst(2))
            let cmp = Command.run("/usr/bin/cmp", [w.m + "/" + name + "/" + relative, w.s + "/" + relative])
            XCTAssertTrue(cmp.ok, cmp.summary)
        }
        let metadata = checkpoint + "/_metadata"
        let cmp = Command.run("/usr/bin/cmp", [w.m + "/" + name + "/" + metadata, w.s + "/" + metadata])
        XCTAssertTrue(cmp.ok, cmp.summary)
    }
}
