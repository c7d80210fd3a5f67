import FlinkFixtures
import Foundation
import XCTest

/// No table the command line prints cuts a name short: long names widen their column, so whatever `list` shows
/// can be pasted back into `show`, `delete` or `move`.
final class LongNameCLITests: XCTestCase {
    /// The column each line's field `index` starts at, splitting on runs of two or more spaces.
    private func columnStarts(_ line: Substring) -> [Int] {
        var starts = [0], spaces = 0, i = 0
        for c in line {
            if c == " " { spaces += 1 } else {
                if spaces >= 2 { starts.append(i) }
                spaces = 0
            }
            i += 1
        }
        return starts
    }

    /// A Flink store's savepoint names (longer than the column used to be) are printed whole, each column starts
    /// at the same place on every line, and each printed name works with `show`.
    func testListPrintsFlinkSavepointNamesWhole() throws {
        let s = try Scratch()
        let store = s.path("store")
        try FileManager.default.copyItem(at: FlinkFixtures.directory.appendingPathComponent("store-1"), to: URL(fileURLWithPath: store))
        _ = try SnapFSTool.ok(["init", store, "--engine", "flink", "--path-map", "\(FlinkFixtures.writtenAt)=\(store)"])
        let out = try SnapFSTool.ok(["list", store])
        let lines = out.split(separator: "\n")
        XCTAssertEqual(lines.count, 15, out)
        let printed = lines.dropFirst().map { String($0.split(separator: " ")[0]) }
        XCTAssertTrue(printed.contains("savepoint-c4f302-ffe50290a9b7"), out)
        XCTAssertTrue(printed.contains("savepoint-c4f302-a3c72ffbb47e"), out)
        let json = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(try SnapFSTool.ok(["list", store, "--json"]).utf8)) as? [[String: Any]])
        XCTAssertEqual(printed, json.map { $0["name"] as? String ?? "?" }, "every name exactly as the store has it")
        let header = columnStarts(lines[0])
        XCTAssertEqual(header.count, 6, String(lines[0]))
        for line in lines.dropFirst() {
            XCTAssertEqual(Array(columnStarts(line).prefix(4)), Array(header.prefix(4)), "aligned: \(line)")
        }
        for name in printed where name.hasPrefix("savepoint-") {
            XCTAssertTrue(try SnapFSTool.ok(["show", store, name]).contains("name:          \(name) "))
        }
    }

    /// A label of the longest length a name may have is printed whole by `list`, `show`, `events` and in the
    /// refusal of a move to another name as long, and `formats` shows every value whole in aligned columns.
    func testLongestLabelIsPrintedWholeEverywhere() throws {
        let s = try Scratch()
        let state = s.path("state"), store = s.path("store")
        try FileManager.default.createDirectory(atPath: state, withIntermediateDirectories: true)
        try Data("x".utf8).write(to: URL(fileURLWithPath: state + "/f"))
        _ = try SnapFSTool.ok(["init", store, "--state", state])
        let long = "pre-upgrade-" + String(repeating: "0123456789", count: 11) + "abcdef"
        XCTAssertEqual(long.count, 128)
        _ = try SnapFSTool.ok(["trigger", store, "--label", long])
        _ = try SnapFSTool.ok(["trigger", store, "--label", "short"])

        let list = try SnapFSTool.ok(["list", store])
        let rows = list.split(separator: "\n")
        XCTAssertEqual(rows.dropFirst().map { String($0.split(separator: " ")[0]) }, [long, "short"], list)
        XCTAssertEqual(columnStarts(rows[1]).prefix(4), columnStarts(rows[2]).prefix(4), list)
        XCTAssertTrue(try SnapFSTool.ok(["show", store, long]).contains(long))

        // The move is refused (the name is taken); the refusal quotes both names whole.
        let refused = try SnapFSTool.run(["move", store, long, "short"])
        XCTAssertNotEqual(refused.status, 0)
        let longer = String(long.dropLast()) + "z"
        _ = try SnapFSTool.ok(["move", store, long, longer])
        let events = try SnapFSTool.ok(["events", store])
        XCTAssertTrue(events.contains(long), events)
        XCTAssertTrue(events.contains(longer), events)
        XCTAssertTrue(try SnapFSTool.ok(["list", store]).contains(longer + " "))

        let formats = try SnapFSTool.ok(["formats"])
        let table = formats.split(separator: "\n", omittingEmptySubsequences: false).prefix { !$0.isEmpty }
        XCTAssertEqual(table.count, 7, formats)
        let bars = table.map { line in line.enumerated().filter { $0.element == "|" }.map(\.offset) }
        for b in bars { XCTAssertEqual(b, bars[0], "every row's columns line up: \(formats)") }
        XCTAssertTrue(formats.contains("yes: plain files plus a manifest with checksums; readable with no SnapFS installed"))
    }
}
