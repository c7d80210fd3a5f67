import Foundation
@testable import SnapFileOps
import SnapStore
import XCTest

/// SPEC §4: a refusal is never silent. Every distinct one is its own line in `.snapfs/events`.
final class RefusalEventTests: XCTestCase {
    func testDistinctRefusalsInOneSecondAreEachAnEvent() throws {
        let f = try Fixture()
        try f.write("x", "x")
        // Nine different refusals with no snapshot and the same errno (EINVAL), all at the same instant.
        for offset in 1...9 {
            XCTAssertEqual(try f.echo("piece", to: "default", offset: Int64(offset))?.errno, EINVAL)
        }
        let refusals = try f.store.events().filter { $0.type == "refusal" }
        for offset in 1...9 {
            XCTAssertEqual(refusals.filter { $0.detail.contains("this write was at offset \(offset)") }.count, 1,
                           "the refusal at offset \(offset) is recorded once: \(refusals.map(\.detail))")
        }
        XCTAssertEqual(refusals.count, 9)
    }

    func testIdenticalRepeatsAreCountedNotDropped() throws {
        let f = try Fixture()
        try f.write("x", "x")
        for _ in 0..<3 { XCTAssertEqual(try f.echo("has space\n", to: "default")?.errno, EINVAL) }
        XCTAssertEqual(try f.store.events().filter { $0.type == "refusal" }.count, 1, "identical repeats within the window wait to be counted")
        f.clock.advance(SnapFileSystem.refusalWindow + 1)
        _ = f.fs.poll()
        let refusals = try f.store.events().filter { $0.type == "refusal" }
        XCTAssertEqual(refusals.count, 2, refusals.map(\.detail).description)
        XCTAssertTrue(refusals[1].detail.contains("has space") && refusals[1].detail.contains("2 more times"), refusals[1].detail)
        // A different refusal in the same window is never folded into it.
        XCTAssertEqual(try f.echo("has space\n", to: "native-full")?.errno, EINVAL)
        XCTAssertEqual(try f.store.events().filter { $0.type == "refusal" }.count, 3)
    }
}
