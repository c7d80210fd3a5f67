import FlinkFixtures
import Foundation
import XCTest

/// Every `--json` output is one JSON document a parser reads whole: scripts pipe it into `jq` or `json.load`.
final class JSONOutputTests: XCTestCase {
    /// Parses `out` as exactly one JSON document (JSONSerialization refuses trailing text).
    @discardableResult
    private func document(_ out: String, _ what: String, file: StaticString = #filePath, line: UInt = #line) -> Any? {
        do {
            return try JSONSerialization.jsonObject(with: Data(out.utf8), options: [.fragmentsAllowed])
        } catch {
            XCTFail("\(what): not one JSON document (\(error)):\n\(out.prefix(2000))", file: file, line: line)
            return nil
        }
    }

    func testEveryJSONOutputOfAFlinkStoreIsOneDocument() throws {
        let s = try Scratch()
        let store = s.path("store")
        try FileManager.default.createDirectory(atPath: store, withIntermediateDirectories: true)
        let truth = try SyntheticFlinkStore.write(at: URL(fileURLWithPath: store))
        _ = try SnapFSTool.ok(["init", store, "--engine", "flink", "--path-map", "\(SyntheticFlinkStore.writtenAt)=\(store)"])

        let list = try XCTUnwrap(document(try SnapFSTool.ok(["list", store, "--json"]), "list") as? [[String: Any]])
        XCTAssertEqual(list.count, 4)
        let changelog = "checkpoints/\(SyntheticFlinkStore.changelogJob)/chk-2"
        // Flink's own naming: the job id's first six characters and the checkpoint directory.
        XCTAssertEqual(Set(list.compactMap { $0["name"] as? String }), ["0a0a0a-chk-1", "0a0a0a-chk-2", "0b0b0b-chk-1", "0b0b0b-chk-2"])
        let name = "0a0a0a-chk-2"
        document(try SnapFSTool.ok(["show", store, name, "--json"]), "show")
        let shown = try XCTUnwrap(document(try SnapFSTool.ok(["show", store, name, "--files", "--json"]), "show --files") as? [String: Any])
        XCTAssertEqual(shown["name"] as? String, name)
        let entries = try XCTUnwrap(shown["entries"] as? [[String: Any]])
        let files = entries.filter { ($0["type"] as? String) == "file" && !(($0["path"] as? String) ?? "").hasSuffix("_metadata") }
        let rules = Set(files.map { "\($0["path"] as? String ?? "?") \($0["size"] as? Int ?? -1) \($0["sizeRule"] as? String ?? "?") \($0["requiredSize"] as? Int ?? -1)" })
        let expected = try XCTUnwrap(truth.first { $0.directory == changelog })
        XCTAssertEqual(rules, Set(expected.files.map { "\($0.path) \($0.length) \($0.rule.rawValue) \($0.required)" }))
        // The text listing names the rule of a file that may be longer than the snapshot needs.
        XCTAssertTrue(try SnapFSTool.ok(["show", store, name, "--files"]).contains("dstl-2 (needs >= 60)"))

        let verify = try SnapFSTool.run(["verify", store, "--json"])
        XCTAssertEqual(verify.status, 0, verify.stderr)
        let report = try XCTUnwrap(document(verify.stdout, "verify") as? [String: Any])
        XCTAssertEqual(report["notRestorable"] as? [String], [])
        document(try SnapFSTool.ok(["refresh", store, "--json"]), "refresh")
        document(try SnapFSTool.ok(["gc", store, "--json"]), "gc")
        document(try SnapFSTool.ok(["status", store, "--json"]), "status")
        document(try SnapFSTool.ok(["formats", "--json"]), "formats")
        let trigger = try SnapFSTool.run(["trigger", store, "--format", "canonical", "--json"])
        XCTAssertNotEqual(trigger.status, 0, "this store has no REST address to trigger through")
        if !trigger.stdout.isEmpty { document(trigger.stdout, "trigger (refused)") }
        document(try SnapFSTool.ok(["delete", store, "0b0b0b-chk-1", "--json"]), "delete")
        let events = try XCTUnwrap(document(try SnapFSTool.ok(["events", store, "--json"]), "events") as? [[String: Any]])
        XCTAssertFalse(events.isEmpty)
    }

    func testEveryJSONOutputOfALocalStoreIsOneDocument() throws {
        let s = try Scratch()
        let state = s.path("state"), store = s.path("store")
        try FileManager.default.createDirectory(atPath: state, withIntermediateDirectories: true)
        try Data("x".utf8).write(to: URL(fileURLWithPath: state + "/x"))
        _ = try SnapFSTool.ok(["init", store, "--state", state])
        document(try SnapFSTool.ok(["trigger", store, "--label", "one", "--json"]), "trigger")
        document(try SnapFSTool.ok(["trigger", store, "--label", "two", "--json"]), "trigger")
        document(try SnapFSTool.ok(["list", store, "--json"]), "list")
        document(try SnapFSTool.ok(["show", store, "one", "--json"]), "show")
        let shown = try XCTUnwrap(document(try SnapFSTool.ok(["show", store, "one", "--files", "--json"]), "show --files") as? [String: Any])
        let entries = try XCTUnwrap(shown["entries"] as? [[String: Any]])
        XCTAssertEqual(entries.first { ($0["path"] as? String) == "x" }?["sizeRule"] as? String, "exact")
        document(try SnapFSTool.ok(["verify", store, "--json"]), "verify")
        document(try SnapFSTool.ok(["gc", store, "--json"]), "gc")
        document(try SnapFSTool.ok(["status", store, "--json"]), "status")
        document(try SnapFSTool.ok(["delete", store, "one", "--json"]), "delete")
        document(try SnapFSTool.ok(["events", store, "--json"]), "events")
    }
}
