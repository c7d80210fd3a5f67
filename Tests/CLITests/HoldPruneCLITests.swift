import Foundation
import XCTest

/// `hold`, `release`, `prune` and `delete --dry-run` as a user runs them, on a local store and on a copy of a real
/// Flink store: every dry run is checked against the real run that follows it, on disk.
final class HoldPruneCLITests: XCTestCase {
    private func json(_ out: String, file: StaticString = #filePath, line: UInt = #line) throws -> [String: Any] {
        try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(out.utf8)) as? [String: Any], out, file: file, line: line)
    }

    /// Every regular file of the store but the catalog and the run directory, with its length: what deletes change.
    private func storeFiles(_ store: String) -> [String: Int64] {
        var out: [String: Int64] = [:]
        let en = FileManager.default.enumerator(atPath: store)!
        while let p = en.nextObject() as? String {
            if p.hasPrefix("catalog.sqlite") || p == "run" || p.hasPrefix("run/") { continue }
            var st = stat()
            if lstat(store + "/" + p, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG { out[p] = Int64(st.st_size) }
        }
        return out
    }

    /// A plan as JSON, without the one field a dry run and a real run must differ in.
    private func comparable(_ plan: Any?) -> NSDictionary {
        var d = (plan as? [String: Any]) ?? [:]
        d["dryRun"] = nil
        return d as NSDictionary
    }

    /// Runs a dry run, then the real command, and checks they agree: same snapshots gone, the announced files and
    /// only those gone from disk, the announced bytes freed, shared files still there. Returns the real plan.
    @discardableResult
    private func dryRunThenReal(_ store: String, _ args: [String], planKey: String?, file: StaticString = #filePath, line: UInt = #line) throws -> [String: Any] {
        let listBefore = try SnapFSTool.ok(["list", store, "--json"])
        let filesBefore = storeFiles(store)
        let dryOut = try SnapFSTool.run(args + ["--dry-run", "--json"])
        XCTAssertEqual(dryOut.status, 0, dryOut.stderr, file: file, line: line)
        XCTAssertEqual(storeFiles(store), filesBefore, "a dry run removes nothing", file: file, line: line)
        XCTAssertEqual(try SnapFSTool.ok(["list", store, "--json"]), listBefore, "a dry run deletes nothing", file: file, line: line)
        let dry = try json(dryOut.stdout)
        let dryPlan = try XCTUnwrap((planKey.map { dry[$0] } ?? dry) as? [String: Any], file: file, line: line)
        XCTAssertEqual(dryPlan["dryRun"] as? Bool, true, file: file, line: line)

        let realOut = try SnapFSTool.run(args + ["--json"])
        XCTAssertEqual(realOut.status, 0, realOut.stderr, file: file, line: line)
        let real = try json(realOut.stdout)
        let realPlan = try XCTUnwrap((planKey.map { real[$0] } ?? real) as? [String: Any], file: file, line: line)
        XCTAssertEqual(realPlan["dryRun"] as? Bool, false, file: file, line: line)
        XCTAssertEqual(comparable(realPlan), comparable(dryPlan), "the real run did what the dry run said", file: file, line: line)

        let filesAfter = storeFiles(store)
        // A file the catalog names but that is missing already (a damaged snapshot) is announced as such.
        let announced = dryPlan["removedFiles"] as? [[String: Any]] ?? []
        let removed = announced.filter { $0["bytesOnDisk"] != nil }.compactMap { $0["path"] as? String }
        for f in announced where f["bytesOnDisk"] == nil {
            XCTAssertNil(filesBefore[f["path"] as? String ?? ""], "\(f) is announced as missing", file: file, line: line)
        }
        let kept = (dryPlan["keptShared"] as? [[String: Any]] ?? []).compactMap { $0["path"] as? String }
        XCTAssertEqual(Set(filesBefore.keys).subtracting(filesAfter.keys), Set(removed), "exactly the announced files are gone", file: file, line: line)
        for k in kept { XCTAssertNotNil(filesAfter[k], "shared \(k) stays", file: file, line: line) }
        let freed = filesBefore.values.reduce(0, +) - filesAfter.values.reduce(0, +)
        XCTAssertEqual(Int64(dryPlan["bytesFreed"] as? Int ?? -1), freed, "the bytes freed, measured on disk", file: file, line: line)
        let listed = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(try SnapFSTool.ok(["list", store, "--json"]).utf8)) as? [[String: Any]])
        let gone = Set(dryPlan["snapshots"] as? [String] ?? [])
        XCTAssertTrue(Set(listed.compactMap { $0["name"] as? String }).isDisjoint(with: gone), file: file, line: line)
        return real
    }

    func testHoldsPruneAndDryRunsOnALocalStore() throws {
        let s = try Scratch()
        let state = s.path("state"), store = s.path("store")
        try FileManager.default.createDirectory(atPath: state, withIntermediateDirectories: true)
        _ = try SnapFSTool.ok(["init", store, "--state", state])
        for round in 0..<6 {
            for i in 0..<6 where round == 0 || i % (round + 1) == 0 {
                try Data(String(repeating: "r\(round)i\(i)", count: 200 + 50 * i).utf8).write(to: URL(fileURLWithPath: "\(state)/f\(i)"))
            }
            _ = try SnapFSTool.ok(["trigger", store, "--label", "s\(round)", "--format", "native-incremental"])
        }

        // A hold: marked in list and show, refused by delete (also in a dry run), move and prune with exit 5.
        XCTAssertEqual(try SnapFSTool.ok(["hold", store, "s1", "--reason", "ticket 311: keep for audit"]), "s1 held: ticket 311: keep for audit\n")
        XCTAssertTrue(try SnapFSTool.ok(["list", store]).contains("(held: ticket 311: keep for audit)"))
        let rows = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(try SnapFSTool.ok(["list", store, "--json"]).utf8)) as? [[String: Any]])
        XCTAssertEqual(rows.filter { ($0["held"] as? Bool) == true }.compactMap { $0["name"] as? String }, ["s1"])
        XCTAssertEqual((rows.first { $0["name"] as? String == "s1" }?["hold"] as? [String: Any])?["reason"] as? String, "ticket 311: keep for audit")
        XCTAssertTrue(try SnapFSTool.ok(["show", store, "s1"]).contains("deletable:     no: held: ticket 311: keep for audit"))
        XCTAssertEqual(try json(try SnapFSTool.ok(["show", store, "s1", "--json"]))["held"] as? Bool, true)
        for args in [["delete", store, "s1"], ["delete", store, "s1", "--dry-run"], ["move", store, "s1", "t1"]] {
            let r = try SnapFSTool.run(args)
            XCTAssertEqual(r.status, 5, "\(args): \(r.stderr)")
            XCTAssertTrue(r.stderr.contains("held: ticket 311: keep for audit"), r.stderr)
        }
        let events = try SnapFSTool.ok(["events", store])
        XCTAssertTrue(events.contains("delete refused: held: ticket 311: keep for audit"), events)
        XCTAssertTrue(events.contains("move to 't1' refused"), events)

        // delete --dry-run, then delete: the same.
        try dryRunThenReal(store, ["delete", store, "s2", "s3"], planKey: nil)

        // prune: the held one and the recovery point are kept with why, the rest follows the policy.
        let pruned = try dryRunThenReal(store, ["prune", store, "--keep-last", "1"], planKey: "plan")
        let decisions = try XCTUnwrap(pruned["decisions"] as? [[String: Any]])
        let keptWhy = Dictionary(uniqueKeysWithValues: decisions.filter { $0["keep"] as? Bool == true }.map { ($0["name"] as! String, $0["reasons"] as! [String]) })
        XCTAssertEqual(keptWhy, ["s5": ["last snapshot"], "s1": ["held: ticket 311: keep for audit"]])
        XCTAssertEqual(Set((pruned["plan"] as? [String: Any])?["snapshots"] as? [String] ?? []), ["s0", "s4"])
        XCTAssertEqual(try SnapFSTool.ok(["list", store, "--json"]).components(separatedBy: "\"name\"").count - 1, 2)

        // Released: now it may go. Releasing again, a policy of nothing, a bad count: refused by name.
        XCTAssertEqual(try SnapFSTool.ok(["release", store, "s1"]), "s1 released (its hold was: ticket 311: keep for audit)\n")
        let again = try SnapFSTool.run(["release", store, "s1"])
        XCTAssertEqual(again.status, 2)
        XCTAssertTrue(again.stderr.contains("s1 is not held"), again.stderr)
        let noPolicy = try SnapFSTool.run(["prune", store])
        XCTAssertEqual(noPolicy.status, 2)
        XCTAssertTrue(noPolicy.stderr.contains("no retention rule given"), noPolicy.stderr)
        XCTAssertEqual(try SnapFSTool.run(["prune", store, "--keep-daily=-1"]).status, 2)
        XCTAssertEqual(try SnapFSTool.run(["prune", store, "--keep-within", "3 days"]).status, 2)
        XCTAssertEqual(try SnapFSTool.run(["hold", store, "missing", "--reason", "x"]).status, 3)
        let text = try SnapFSTool.ok(["delete", store, "s1", "--dry-run"])
        XCTAssertTrue(text.hasPrefix("would delete 1 snapshot: s1\n"), text)
        XCTAssertTrue(text.contains("would be freed"), text)
        try dryRunThenReal(store, ["delete", store, "s1"], planKey: nil)
        XCTAssertEqual(try SnapFSTool.run(["verify", store]).status, 0)
    }

    func testHoldsPruneAndDryRunsOnAFlinkStore() throws {
        let checkout = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let beside = checkout.deletingLastPathComponent().appendingPathComponent("shared/fixtures/flink-2.3")
        let fixtures = ProcessInfo.processInfo.environment["SNAPFS_FLINK_FIXTURES"].map { URL(fileURLWithPath: $0) }
            ?? (FileManager.default.fileExists(atPath: beside.path) ? beside : URL(fileURLWithPath: "/work/shared/fixtures/flink-2.3"))
        let s = try Scratch()
        let store = s.path("store")
        try FileManager.default.copyItem(at: fixtures.appendingPathComponent("store-2"), to: URL(fileURLWithPath: store))
        _ = try SnapFSTool.ok(["init", store, "--engine", "flink", "--path-map", "file:/srv/flink-store=\(store)",
                               "--rest", "http://127.0.0.1:9", "--job", "e91e7d6dd164333d641e1dc4652079b3"])
        let all = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(try SnapFSTool.ok(["list", store, "--json"]).utf8)) as? [[String: Any]])
        XCTAssertEqual(all.count, 16)

        let savepoint = "savepoint-921f15-e22a4d450b0c"
        _ = try SnapFSTool.ok(["hold", store, savepoint, "--reason", "restore drill"])
        XCTAssertTrue(try SnapFSTool.ok(["list", store]).contains("(held: restore drill)"))
        for args in [["delete", store, savepoint], ["delete", store, savepoint, "--dry-run"], ["move", store, savepoint, "moved"]] {
            let r = try SnapFSTool.run(args)
            XCTAssertEqual(r.status, 5, "\(args): \(r.stderr)")
            XCTAssertTrue(r.stderr.contains("held: restore drill"), r.stderr)
        }
        XCTAssertTrue(FileManager.default.fileExists(atPath: store + "/savepoints/\(savepoint)/_metadata"))

        // A delete of two checkpoints that share files, dry and real (not the job's newest: with no JobManager
        // answering, every job's newest checkpoint is its recovery point).
        try dryRunThenReal(store, ["delete", store, "02ab6b-chk-11", "02ab6b-chk-12"], planKey: nil)
        XCTAssertFalse(FileManager.default.fileExists(atPath: store + "/checkpoints/02ab6bf33f13c08795f99e9650cf1b17/chk-11"))

        let unreferencedBefore = try json(try SnapFSTool.run(["verify", store, "--json"]).stdout)["unreferenced"] as? [String]
        // prune per job: the newest two of each job stay by the rule; the held savepoint and the recovery point stay
        // whatever the rule says, with why.
        let pruned = try dryRunThenReal(store, ["prune", store, "--keep-last", "2"], planKey: "plan")
        let decisions = try XCTUnwrap(pruned["decisions"] as? [[String: Any]])
        XCTAssertEqual(decisions.count, 14)
        let byJob = Dictionary(grouping: decisions, by: { $0["job"] as? String ?? "" })
        XCTAssertGreaterThan(byJob.count, 1, "the fixture holds several jobs")
        for (job, ds) in byJob {
            XCTAssertEqual(ds.prefix(2).filter { ($0["reasons"] as? [String])?.contains("last snapshot") == true }.count, min(2, ds.count), "job \(job)")
        }
        let held = try XCTUnwrap(decisions.first { $0["name"] as? String == savepoint })
        XCTAssertEqual(held["keep"] as? Bool, true)
        if (held["reasons"] as? [String])?.contains("last snapshot") != true {
            XCTAssertEqual(held["reasons"] as? [String], ["held: restore drill"])
        }
        let plan = try XCTUnwrap(pruned["plan"] as? [String: Any])
        XCTAssertFalse((plan["snapshots"] as? [String] ?? []).isEmpty)
        XCTAssertTrue(FileManager.default.fileExists(atPath: store + "/savepoints/\(savepoint)/_metadata"))
        let verify = try SnapFSTool.run(["verify", store, "--json"])
        let report = try json(verify.stdout)
        XCTAssertFalse((report["notRestorable"] as? [String] ?? []).contains(savepoint))
        XCTAssertEqual(report["unreferenced"] as? [String], unreferencedBefore, "nothing left behind by the deletes")
    }
}
