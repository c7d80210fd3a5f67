import Foundation
import SnapStore
import XCTest

/// The store issue's scripted scenario, through the command line only.
final class ScenarioTests: XCTestCase {
    func testTwoThousandFilesFiveIncrementalsDeleteSecondAndFourth() throws {
        let s = try Scratch()
        let state = s.path("state"), store = s.path("store")
        var rng = SystemRandomNumberGenerator()
        for d in 0..<20 {
            try FileManager.default.createDirectory(atPath: "\(state)/dir\(d)", withIntermediateDirectories: true)
            for f in 0..<100 {
                try Data((0..<(512 + (d * 100 + f) % 3000)).map { _ in UInt8.random(in: 0...255, using: &rng) })
                    .write(to: URL(fileURLWithPath: "\(state)/dir\(d)/file\(f).bin"))
            }
        }
        _ = try SnapFSTool.ok(["init", store, "--state", state])

        var captured: [String: [String: String]] = [:]
        var names: [String] = []
        for round in 0..<5 {
            if round > 0 {
                // Between snapshots: change 40 files, add 10, remove 5 — as a job's state moves on.
                for i in 0..<40 {
                    // Twenty files change in every round (a hot key range), twenty elsewhere.
                    let file = i < 20 ? i : (round * 7 + i) % 100
                    try Data("round \(round) change \(i)".utf8).write(to: URL(fileURLWithPath: "\(state)/dir\(i % 20)/file\(file).bin"))
                }
                for i in 0..<10 { try Data("round \(round) new \(i)".utf8).write(to: URL(fileURLWithPath: "\(state)/dir\(i)/new-\(round)-\(i).bin")) }
                for i in 0..<5 { try? FileManager.default.removeItem(atPath: "\(state)/dir\(19 - i)/file\(round * 11 + i).bin") }
            }
            let name = "inc-\(round + 1)"
            _ = try SnapFSTool.ok(["trigger", store, "--format", "native-incremental", "--label", name])
            captured[name] = try treeChecksums(state)
            names.append(name)
        }
        XCTAssertEqual(captured["inc-1"]?.count, 2000)

        var referencedBy: [String: Set<String>] = [:]
        do {
            let opened = try Store.open(at: URL(fileURLWithPath: store))
            for snap in try opened.snapshots() { referencedBy[snap.name] = Set(try opened.entries(of: snap.id).compactMap(\.objectPath)) }
        }
        _ = try SnapFSTool.ok(["delete", store, "inc-2", "inc-4"])
        let listed = try JSONDecoder().decode([ListedSnapshot].self, from: Data(try SnapFSTool.ok(["list", store, "--json"]).utf8))
        XCTAssertEqual(listed.map(\.name), ["inc-1", "inc-3", "inc-5"])
        XCTAssertTrue(listed.allSatisfy { $0.format == "native-incremental" })

        let verify = try SnapFSTool.run(["verify", store, "--json"])
        XCTAssertEqual(verify.status, 0, verify.stdout + verify.stderr)
        let report = try JSONDecoder().decode(VerifyReport.self, from: Data(verify.stdout.utf8))
        XCTAssertEqual(report.problems, [])
        XCTAssertEqual(report.unreferenced, [])

        for name in ["inc-1", "inc-3", "inc-5"] {
            let out = s.path("export-\(name)")
            _ = try SnapFSTool.ok(["export", store, name, out])
            XCTAssertEqual(try treeChecksums(out + "/files"), captured[name], "\(name) exports byte-identical to the state it captured")
        }

        // Stored objects on disk are exactly those the remaining snapshots reference: nothing leaked, nothing missing.
        let opened = try Store.open(at: URL(fileURLWithPath: store))
        var referenced = Set<String>()
        for snap in try opened.snapshots() { for e in try opened.entries(of: snap.id) { if let p = e.objectPath { referenced.insert(p) } } }
        let onDisk = Set(filesUnder(store + "/objects").map { "objects/" + $0 })
        XCTAssertEqual(onDisk, referenced)
        XCTAssertEqual(referenced, referencedBy["inc-1"]!.union(referencedBy["inc-3"]!).union(referencedBy["inc-5"]!))
        let onlyDeleted = referencedBy["inc-2"]!.union(referencedBy["inc-4"]!).subtracting(referenced)
        XCTAssertGreaterThanOrEqual(onlyDeleted.count, 30, "inc-2 and inc-4 each held the hot files' versions of their round")
        XCTAssertTrue(onlyDeleted.isDisjoint(with: onDisk), "the files only inc-2 and inc-4 used are gone")
        XCTAssertLessThan(referencedBy["inc-5"]!.subtracting(referencedBy["inc-4"]!).count, 60, "an incremental writes only what changed")

        print("scenario: 2,000 files, 5 incrementals, inc-2 and inc-4 deleted: \(onDisk.count) objects on disk = \(referenced.count) referenced by inc-1/3/5; \(onlyDeleted.count) objects only inc-2/inc-4 held were removed")
        // The recovery point may not be deleted: the reason is printed and nothing changes.
        let before = try SnapFSTool.ok(["list", store, "--json"])
        let refused = try SnapFSTool.run(["delete", store, "inc-5"])
        XCTAssertEqual(refused.status, 5)
        XCTAssertTrue(refused.stderr.contains("recovery point: newer snapshot needed first"), refused.stderr)
        XCTAssertEqual(try SnapFSTool.ok(["list", store, "--json"]), before)
        XCTAssertEqual(Set(filesUnder(store + "/objects").map { "objects/" + $0 }), onDisk)
        let events = try SnapFSTool.ok(["events", store, "--json"])
        XCTAssertTrue(events.contains("recovery point"), "the refusal is in the event log")
    }

    func testBadLabelsAreRefusedByNameAndChangeNothing() throws {
        let s = try Scratch()
        let state = s.path("state"), store = s.path("store")
        try FileManager.default.createDirectory(atPath: state, withIntermediateDirectories: true)
        try Data("x".utf8).write(to: URL(fileURLWithPath: state + "/x"))
        _ = try SnapFSTool.ok(["init", store, "--state", state])
        _ = try SnapFSTool.ok(["trigger", store, "--label", "taken"])
        _ = try SnapFSTool.ok(["trigger", store, "--label", "other"])
        let before = try SnapFSTool.ok(["list", store, "--json"])
        let objectsBefore = filesUnder(store + "/objects")
        let cases: [(String, Int32, String)] = [
            ("a/b", 2, "a/b"), ("..", 2, ".."), ("../escape", 2, "../escape"), (".hidden", 2, ".hidden"),
            (String(repeating: "x", count: 300), 2, "128"), ("taken", 4, "taken"), ("latest", 2, "latest"), ("chk-7", 2, "chk-7"),
        ]
        for (label, status, mention) in cases {
            let r = try SnapFSTool.run(["trigger", store, "--label", label])
            XCTAssertEqual(r.status, status, "label \(label.prefix(40)): \(r.stderr)")
            XCTAssertTrue(r.stderr.contains(mention), "the error names what was wrong: \(r.stderr)")
            let m = try SnapFSTool.run(["move", store, "other", label])
            XCTAssertNotEqual(m.status, 0, "move to \(label.prefix(40)) must be refused")
        }
        XCTAssertEqual(try SnapFSTool.ok(["list", store, "--json"]), before)
        XCTAssertEqual(filesUnder(store + "/objects"), objectsBefore)
        let unknown = try SnapFSTool.run(["trigger", store, "--format", "zip"])
        XCTAssertEqual(unknown.status, 2)
        XCTAssertTrue(unknown.stderr.contains("zip"), unknown.stderr)
        let notAStore = try SnapFSTool.run(["list", state])
        XCTAssertEqual(notAStore.status, 2)
        XCTAssertTrue(notAStore.stderr.contains("not a SnapFS store"), notAStore.stderr)
    }
}
