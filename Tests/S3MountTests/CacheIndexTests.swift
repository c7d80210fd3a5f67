import S3Mount
import XCTest

/// The cache's byte accounting and least-recently-used eviction, without a disk.
final class CacheIndexTests: XCTestCase {
    func testEvictsLeastRecentlyUsedIdleEntriesToFitTheLimit() {
        var index = CacheIndex<String>(limit: 300)
        XCTAssertEqual(index.add("a", size: 100), [])
        XCTAssertEqual(index.release("a"), [])
        XCTAssertEqual(index.add("b", size: 100), [])
        XCTAssertEqual(index.release("b"), [])
        XCTAssertEqual(index.add("c", size: 100), [])
        XCTAssertEqual(index.release("c"), [])
        // "a" used again: "b" is now the least recently used.
        XCTAssertTrue(index.acquire("a"))
        XCTAssertEqual(index.release("a"), [])
        XCTAssertEqual(index.add("d", size: 150), ["b", "c"], "oldest first, until the total fits")
        XCTAssertEqual(index.bytes, 250)
        XCTAssertEqual(Set(index.items.keys), ["a", "d"])
        XCTAssertFalse(index.acquire("b"), "an evicted entry is gone")
    }

    func testNeverEvictsAnEntryInUse() {
        var index = CacheIndex<String>(limit: 100)
        XCTAssertEqual(index.add("reading", size: 80), [])
        // In use by its reader: a second entry pushes the total over the limit, and nothing can go.
        XCTAssertEqual(index.add("next", size: 80), [])
        XCTAssertTrue(index.overLimit)
        XCTAssertTrue(index.acquire("next"), "a second user of the same entry")
        XCTAssertEqual(index.release("next"), [], "still in use once")
        // The first reader is done: it is the least recently used idle entry now.
        XCTAssertEqual(index.release("reading"), ["reading"])
        XCTAssertFalse(index.overLimit)
        XCTAssertEqual(index.release("next"), [], "fits: nothing more goes")
        XCTAssertEqual(index.bytes, 80)
    }

    func testEntriesFoundAtStartAreIdleInTheirOrder() {
        var index = CacheIndex<String>(limit: 250)
        XCTAssertEqual(index.add("old", size: 100, users: 0), [])
        XCTAssertEqual(index.add("new", size: 100, users: 0), [])
        XCTAssertEqual(index.add("third", size: 100, users: 0), ["old"])
        index.remove("new")
        XCTAssertEqual(index.bytes, 100)
        XCTAssertEqual(index.count, 1)
    }
}
