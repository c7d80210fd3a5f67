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

    func testLongestRuleWins() {
        let map = PathMap([(from: "/srv", to: "/a"), (from: "/srv/flink-store", to: "/b")])
        XCTAssertEqual(map.map("file:/srv/flink-store/x"), "/b/x")
        XCTAssertEqual(map.map("file:/srv/other/x"), "/a/other/x")
    }
}
