import FlinkMetadata
import XCTest

final class PathMapTests: XCTestCase {
    func testPrefixRewritesWholeComponentsOnly() {
        let map = PathMap([(from: "file:/srv/flink-store", to: "/tmp/x")])
        XCTAssertEqual(map.map("file:/srv/flink-store/checkpoints/a"), "/tmp/x/checkpoints/a")
        XCTAssertEqual(map.map("file:///srv/flink-store/a"), "/tmp/x/a")
        XCTAssertEqual(map.map("/srv/flink-store/a"), "/tmp/x/a")
        XCTAssertEqual(map.map("file:/srv/flink-store-2/a"), "/srv/flink-store-2/a")
        XCTAssertEqual(map.map("s3://bucket/a"), "s3://bucket/a")
    }

    func testDotDotBeforeACombiningMarkIsStillResolved() {
        // "/" followed by U+0301 is one Swift Character; Flink and the kernel see "..", then a name.
        XCTAssertEqual(PathMap.identity.map("file:/srv/a/b/../\u{301}x"), "/srv/a/\u{301}x")
        XCTAssertEqual(PathMap.identity.map("/srv/a/..\\\u{301}x"), "/srv/\u{301}x")
    }

    func testLongestRuleWins() {
        let map = PathMap([(from: "/srv", to: "/a"), (from: "/srv/flink-store", to: "/b")])
        XCTAssertEqual(map.map("file:/srv/flink-store/x"), "/b/x")
        XCTAssertEqual(map.map("file:/srv/other/x"), "/a/other/x")
    }
}
