import SnapStore
import XCTest

final class PathBytesTests: XCTestCase {
    func testComponentsAreCutAtEverySlashByte() {
        XCTAssertEqual(PathBytes.components("../\u{301}x"), ["..", "\u{301}x"])
        XCTAssertEqual("../\u{301}x".split(separator: "/").count, 1, "what Character-wise splitting would see")
        XCTAssertEqual(PathBytes.components("a//b/", omittingEmpty: false), ["a", "", "b", ""])
        XCTAssertEqual(PathBytes.components("/a/b"), ["a", "b"])
    }

    func testSplitAndFirst() {
        XCTAssertTrue(PathBytes.split("d/\u{301}e") == ("d", "\u{301}e"))
        XCTAssertTrue(PathBytes.split("top") == ("", "top"))
        XCTAssertEqual(PathBytes.first("a/b/c"), "a")
        XCTAssertEqual(PathBytes.first("/a"), "")
        XCTAssertEqual(PathBytes.parent("a/b/\u{301}c"), "a/b")
        XCTAssertNil(PathBytes.parent("top"))
    }

    func testRelativeComparesBytesNotCanonicalEquivalents() {
        XCTAssertEqual(PathBytes.relative("/store/a/b", under: "/store"), "a/b")
        XCTAssertEqual(PathBytes.relative("/store/a", under: "/store/"), "a")
        XCTAssertEqual(PathBytes.relative("/x", under: "/"), "x")
        XCTAssertNil(PathBytes.relative("/store", under: "/store"))
        XCTAssertNil(PathBytes.relative("/store/", under: "/store"))
        XCTAssertNil(PathBytes.relative("/storex/a", under: "/store"))
        // "é" as one scalar and as "e" + U+0301 are equal Strings, but two different directories to the kernel.
        XCTAssertTrue("/stor\u{E9}/x".hasPrefix("/store\u{301}/"), "what a Character-wise prefix test would accept")
        XCTAssertNil(PathBytes.relative("/stor\u{E9}/x", under: "/store\u{301}"))
        XCTAssertEqual(PathBytes.relative("/store\u{301}/x", under: "/store\u{301}"), "x")
    }
}
