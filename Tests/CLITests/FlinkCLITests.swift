import FlinkFixtures
import Foundation
import XCTest

/// `snapfs` on a copy of a real Flink store, as a user runs it.
final class FlinkCLITests: XCTestCase {
    private var root: URL!

    override func setUpWithError() throws {
        let checkout = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let beside = checkout.deletingLastPathComponent().appendingPathComponent("shared/fixtures/flink-2.3")
        let fixtures = ProcessInfo.processInfo.environment["SNAPFS_FLINK_FIXTURES"].map { URL(fileURLWithPath: $0) }
            ?? (FileManager.default.fileExists(atPath: beside.path) ? beside : URL(fileURLWithPath: "/work/shared/fixtures/flink-2.3"))
        root = URL(fileURLWithPath: NSTemporaryDirectory()).appendingPathComponent("snapfs-cli-flink-\(UUID().uuidString)")
        try FileManager.default.copyItem(at: fixtures.appendingPathComponent("store-2"), to: root)
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: root) }

    /// The `snapfs` built beside this test bundle.
    private var binary: URL {
        URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("snapfs")
    }

    @discardableResult
    private func snapfs(_ args: String...) throws -> (status: Int32, out: String, err: String) {
        let p = Process()
        p.executableURL = binary
        p.arguments = args
        let out = Pipe(), err = Pipe()
        p.standardOutput = out
        p.standardError = err
        try p.run()
        let o = out.fileHandleForReading.readDataToEndOfFile()
        let e = err.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return (p.terminationStatus, String(decoding: o, as: UTF8.self), String(decoding: e, as: UTF8.self))
    }

    /// `status` shows how many snapshots are held and, for each job, its state, recovery point, newest snapshot and
    /// whether its recovery point is protected, in text and in JSON.
    func testStatusShowsHoldsAndEveryJob() throws {
        let store = root.path
        let cancelled = "921f15d8c1373fc7cba72fc30b4e7851"
        let cluster = FakeCluster(writtenAt: FlinkFixtures.writtenAt, jobs: [cancelled: .init(state: "CANCELED")])
        let fake = try cluster.serve()
        defer { fake.stop() }
        XCTAssertEqual(try snapfs("init", store, "--engine", "flink", "--path-map", "file:/srv/flink-store=\(store)", "--rest", fake.url).status, 0)
        XCTAssertEqual(try snapfs("hold", store, "02ab6b-chk-13", "--reason", "audit").status, 0)

        let status = try snapfs("status", store, "--json")
        let st = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(status.out.utf8)) as? [String: Any], status.out)
        XCTAssertEqual(st["held"] as? Int, 1)
        let jobs = try XCTUnwrap((st["job"] as? [String: Any])?["jobs"] as? [[String: Any]])
        XCTAssertEqual(jobs.count, 5)
        let row = try XCTUnwrap(jobs.first { $0["job"] as? String == cancelled })
        XCTAssertEqual(row["state"] as? String, "CANCELED")
        XCTAssertEqual(row["protected"] as? Bool, false)
        XCTAssertNil(row["recoveryPoint"] as? String)
        XCTAssertEqual(row["newest"] as? String, "921f15-chk-12")
        let unknown = try XCTUnwrap(jobs.first { $0["job"] as? String == "e91e7d6dd164333d641e1dc4652079b3" })
        XCTAssertEqual(unknown["state"] as? String, "UNKNOWN", "a job the JobManager does not know")
        XCTAssertEqual(unknown["protected"] as? Bool, true)
        XCTAssertEqual(unknown["recoveryPoint"] as? String, "e91e7d-chk-17")

        let text = try snapfs("status", store).out
        XCTAssertTrue(text.contains("(1 held)"), text)
        let lines = text.split(separator: "\n").map(String.init)
        XCTAssertTrue(lines.contains { $0.hasPrefix("JOB") && $0.contains("STATE") && $0.contains("PROTECTED") && $0.contains("RECOVERY POINT") && $0.contains("NEWEST") }, text)
        let cancelledLine = try XCTUnwrap(lines.first { $0.hasPrefix(cancelled) }, text)
        let cells = cancelledLine.split(separator: " ", omittingEmptySubsequences: true).prefix(5).map(String.init)
        XCTAssertEqual(cells, [cancelled, "CANCELED", "no", "-", "921f15-chk-12"], cancelledLine)
        let unknownLine = try XCTUnwrap(lines.first { $0.hasPrefix("e91e7d") }, text)
        XCTAssertEqual(unknownLine.split(separator: " ", omittingEmptySubsequences: true).prefix(5).map(String.init),
                       ["e91e7d6dd164333d641e1dc4652079b3", "UNKNOWN", "yes", "e91e7d-chk-17", "e91e7d-chk-17"], unknownLine)
    }

    func testInitListVerifyDeleteMoveTrigger() throws {
        let store = root.path
        let created = try snapfs("init", store, "--engine", "flink", "--path-map", "file:/srv/flink-store=\(store)",
                                 "--rest", "http://127.0.0.1:9", "--job", "e91e7d6dd164333d641e1dc4652079b3")
        XCTAssertEqual(created.status, 0, created.err)
        XCTAssertTrue(created.out.contains("16 snapshots recorded"), created.out)

        let list = try snapfs("list", store, "--json")
        let rows = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(list.out.utf8)) as? [[String: Any]])
        XCTAssertEqual(rows.count, 16)
        // The JobManager does not answer: every job's newest checkpoint is protected, not only the configured job's.
        let newest = ["02ab6b-chk-13", "116c63-chk-4", "276e7c-chk-17", "921f15-chk-12", "e91e7d-chk-17"]
        XCTAssertEqual(Set(rows.filter { ($0["recoveryPoint"] as? Bool) == true }.compactMap { $0["name"] as? String }), Set(newest))

        let status = try snapfs("status", store, "--json")
        let st = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(status.out.utf8)) as? [String: Any])
        let jobs = try XCTUnwrap((st["job"] as? [String: Any])?["jobs"] as? [[String: Any]])
        XCTAssertEqual(jobs.count, 5)
        XCTAssertEqual(Set(jobs.compactMap { $0["recoveryPoint"] as? String }), Set(newest))
        XCTAssertTrue(jobs.allSatisfy { ($0["state"] as? String) == "UNKNOWN" && ($0["protected"] as? Bool) == true }, "\(jobs)")
        XCTAssertEqual((st["job"] as? [String: Any])?["recoveryPoint"] as? String, "e91e7d-chk-17", "the configured job's")
        let statusText = try snapfs("status", store)
        for n in newest { XCTAssertTrue(statusText.out.contains(n), statusText.out) }
        let show = try snapfs("show", store, "921f15-chk-12")
        XCTAssertTrue(show.out.contains("last restorable: yes: the newest snapshot of job 921f15d8c1373fc7cba72fc30b4e7851"), show.out)

        let verify = try snapfs("verify", store, "--json")
        XCTAssertEqual(verify.status, 10, "problems found")
        let report = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(verify.out.utf8)) as? [String: Any])
        XCTAssertEqual(Set(report["notRestorable"] as? [String] ?? []), ["921f15-chk-11", "921f15-chk-12", "savepoint-921f15-e02738e55fb2"])
        let text = try snapfs("verify", store)
        XCTAssertTrue(text.out.contains("NOT RESTORABLE savepoint-921f15-e02738e55fb2"), text.out)

        let busy = try snapfs("delete", store, "e91e7d-chk-17")
        XCTAssertEqual(busy.status, 5)
        XCTAssertTrue(busy.err.contains("recovery point"), busy.err)

        for n in newest {
            let refused = try snapfs("delete", store, n)
            XCTAssertEqual(refused.status, 5, n)
            XCTAssertTrue(refused.err.contains("recovery point of job \(n.prefix(6))"), refused.err)
        }
        let deleted = try snapfs("delete", store, "921f15-chk-11")
        XCTAssertEqual(deleted.status, 0, deleted.err)
        XCTAssertFalse(FileManager.default.fileExists(atPath: store + "/checkpoints/921f15d8c1373fc7cba72fc30b4e7851/chk-11"))

        let move = try snapfs("move", store, "e91e7d-chk-15", "keep")
        XCTAssertEqual(move.status, 6)
        XCTAssertTrue(move.err.contains("checkpoint"), move.err)
        XCTAssertTrue(move.err.contains("snapfs convert e91e7d-chk-15 --to self-contained"), move.err)
        XCTAssertEqual(try snapfs("move", store, "savepoint-921f15-e22a4d450b0c", "canonical-a").status, 0)
        // The savepoint (every handle relative) moved with its directory.
        XCTAssertFalse(FileManager.default.fileExists(atPath: store + "/savepoints/savepoint-921f15-e22a4d450b0c"))
        XCTAssertTrue(FileManager.default.fileExists(atPath: store + "/savepoints/canonical-a/_metadata"))
        XCTAssertTrue(try snapfs("verify", store).out.contains("RESTORABLE     canonical-a"))

        let incremental = try snapfs("trigger", store, "--format", "native-incremental")
        XCTAssertEqual(incremental.status, 8)
        XCTAssertTrue(incremental.err.contains("FLINK-33723"), incremental.err)
        let unreachable = try snapfs("trigger", store, "--format", "canonical", "--label", "x1")
        XCTAssertEqual(unreachable.status, 8)
        XCTAssertTrue(unreachable.err.contains("127.0.0.1:9"), unreachable.err)
    }

    /// `convert --to self-contained` of a retained incremental checkpoint of job E (restored in CLAIM mode from job
    /// A, so it reads A's shared files), then every other snapshot of E, of A and of B (which reads them too)
    /// deleted through the CLI: A's shared files are gone, the copy is listed as a user snapshot and `verify`
    /// calls it restorable. The JobManager reports the three jobs CANCELED, so their newest checkpoints may go.
    func testConvertToSelfContainedThenDeleteTheRestOfTheJob() throws {
        let store = root.path
        let ended = ["e91e7d6dd164333d641e1dc4652079b3", "276e7ca5ca71919ee0c46db264d5c6ab", "921f15d8c1373fc7cba72fc30b4e7851"]
        let fake = try FakeCluster(writtenAt: FlinkFixtures.writtenAt,
                                   jobs: Dictionary(uniqueKeysWithValues: ended.map { ($0, FakeCluster.Job(state: "CANCELED")) })).serve()
        defer { fake.stop() }
        XCTAssertEqual(try snapfs("init", store, "--engine", "flink", "--path-map", "file:/srv/flink-store=\(store)",
                                  "--rest", fake.url).status, 0)
        let converted = try snapfs("convert", store, "e91e7d-chk-15", "--to", "self-contained", "--label", "kept")
        XCTAssertEqual(converted.status, 0, converted.err)
        XCTAssertTrue(converted.out.contains("converted e91e7d-chk-15 to kept (self-contained"), converted.out)
        let rows = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(try snapfs("list", store, "--json").out.utf8)) as? [[String: Any]])
        let kept = try XCTUnwrap(rows.first { $0["name"] as? String == "kept" })
        XCTAssertEqual(kept["kind"] as? String, "user")
        for row in rows {
            guard let name = row["name"] as? String, name != "kept", ["e91e7d-", "276e7c-", "921f15-", "savepoint-921f15-"].contains(where: name.hasPrefix) else { continue }
            let deleted = try snapfs("delete", store, name)
            XCTAssertEqual(deleted.status, 0, "\(name): \(deleted.err)")
        }
        let aShared = store + "/checkpoints/921f15d8c1373fc7cba72fc30b4e7851/shared"
        XCTAssertEqual((try? FileManager.default.subpathsOfDirectory(atPath: aShared)) ?? [], [],
                       "A's shared files, which E's checkpoint read, are gone")
        let verify = try snapfs("verify", store, "--json")
        let report = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(verify.out.utf8)) as? [String: Any], verify.out + verify.err)
        XCTAssertFalse((report["notRestorable"] as? [String] ?? []).contains("kept"), "\(report)")
        XCTAssertTrue(try snapfs("verify", store).out.contains("kept"))
        let refused = try snapfs("convert", store, "kept", "--to", "self-contained", "--label", "kept")
        XCTAssertNotEqual(refused.status, 0)
        XCTAssertTrue(refused.err.contains("already exists"), refused.err)
    }

    /// The FLINK-39964 pattern (a CLAIM-restored job's checkpoint holding a savepoint's relative handles, the
    /// bytes still in the savepoint's directory), made from store-2's restorable savepoint: verify says NOT
    /// RESTORABLE, `repair --dry-run` changes nothing, `repair` makes it RESTORABLE; with a file gone, refused.
    func testRepairOfRelativeHandlesResolvedInTheWrongDirectory() throws {
        let store = root.path
        XCTAssertEqual(try snapfs("init", store, "--engine", "flink", "--path-map", "file:/srv/flink-store=\(store)",
                                  "--rest", "http://127.0.0.1:9").status, 0)
        func verify() throws -> [[String: Any]] {
            let v = try snapfs("verify", store, "--json")
            let report = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(v.out.utf8)) as? [String: Any], v.out + v.err)
            return try XCTUnwrap(report["snapshots"] as? [[String: Any]])
        }
        let savepoint = try XCTUnwrap(try verify().first {
            ($0["directory"] as? String)?.hasPrefix("savepoints/") == true && ($0["restorable"] as? Bool) == true
        }?["directory"] as? String)
        let checkpoint = "checkpoints/0f0e0d0c0b0a09080706050403020100/chk-7"
        try FileManager.default.createDirectory(atPath: store + "/" + checkpoint, withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: store + "/" + savepoint + "/_metadata", toPath: store + "/" + checkpoint + "/_metadata")
        let broken = try XCTUnwrap(try verify().first { $0["directory"] as? String == checkpoint })
        XCTAssertEqual(broken["restorable"] as? Bool, false)
        let name = try XCTUnwrap(broken["name"] as? String)
        XCTAssertTrue(try snapfs("verify", store).out.contains("NOT RESTORABLE \(name)"))

        let original = try Data(contentsOf: URL(fileURLWithPath: store + "/" + checkpoint + "/_metadata"))
        let dry = try snapfs("repair", store, name, "--dry-run")
        XCTAssertEqual(dry.status, 0, dry.err)
        XCTAssertTrue(dry.out.contains("dry run: nothing changed"), dry.out)
        XCTAssertTrue(dry.out.contains(store + "/" + savepoint + "/"), dry.out)
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: store + "/" + checkpoint + "/_metadata")), original)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: store + "/" + checkpoint), ["_metadata"])
        XCTAssertFalse(try snapfs("events", store, "--json").out.contains("\"repair\""))

        let repaired = try snapfs("repair", store, name, "--json")
        XCTAssertEqual(repaired.status, 0, repaired.err)
        let report = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(repaired.out.utf8)) as? [String: Any], repaired.out)
        XCTAssertEqual(report["repaired"] as? Bool, true)
        XCTAssertFalse((report["fixes"] as? [Any] ?? []).isEmpty)
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: store + "/" + checkpoint + "/_metadata.before-repair")), original)
        XCTAssertTrue(try snapfs("verify", store).out.contains("RESTORABLE     \(name)"))
        XCTAssertEqual(try verify().first { $0["name"] as? String == name }?["restorable"] as? Bool, true)
        XCTAssertTrue(try snapfs("events", store, "--json").out.contains("\"repair\""))
        XCTAssertTrue(try snapfs("repair", store, name).out.contains("nothing to repair"))

        // The same pattern with one of the savepoint's files gone: refused (exit 6), the file named, nothing changed.
        let second = "checkpoints/0f0e0d0c0b0a09080706050403020100/chk-8"
        try FileManager.default.createDirectory(atPath: store + "/" + second, withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: store + "/" + savepoint + "/_metadata", toPath: store + "/" + second + "/_metadata")
        let secondName = try XCTUnwrap(try verify().first { $0["directory"] as? String == second }?["name"] as? String)
        let gone = try XCTUnwrap(try FileManager.default.contentsOfDirectory(atPath: store + "/" + savepoint).first { $0 != "_metadata" })
        try FileManager.default.removeItem(atPath: store + "/" + savepoint + "/" + gone)
        let refused = try snapfs("repair", store, secondName)
        XCTAssertEqual(refused.status, 6, refused.err)
        XCTAssertTrue(refused.err.contains(store + "/" + second + "/" + gone), refused.err)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: store + "/" + second), ["_metadata"])
    }
}
