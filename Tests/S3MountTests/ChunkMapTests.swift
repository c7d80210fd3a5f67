import S3Mount
import XCTest

/// The range bookkeeping of one object's cache file, without a server.
final class ChunkMapTests: XCTestCase {
    func testChunksCoveringRangesCutAtTheEnd() {
        let m = ChunkMap(size: 10_000, chunkSize: 4096)
        XCTAssertEqual(m.count, 3)
        XCTAssertEqual(m.range(ofChunk: 2), 8192..<10_000)
        XCTAssertEqual(m.chunks(covering: 0..<1), 0..<1)
        XCTAssertEqual(m.chunks(covering: 4095..<4097), 0..<2)
        XCTAssertEqual(m.chunks(covering: 9_000..<1_000_000), 2..<3)
        XCTAssertEqual(m.chunks(covering: 10_000..<20_000), 0..<0, "past the end: nothing")
        XCTAssertEqual(m.chunks(covering: 0..<0), 0..<0)
        XCTAssertEqual(ChunkMap(size: 0, chunkSize: 4096).count, 0)
        XCTAssertTrue(ChunkMap(size: 0, chunkSize: 4096).isComplete)
    }

    func testAReadWaitsOnlyForTheBytesOfItsRange() {
        var m = ChunkMap(size: 10_000, chunkSize: 4096)
        XCTAssertFalse(m.covers(0..<100))
        XCTAssertTrue(m.covers(0..<0), "an empty range needs nothing")
        XCTAssertTrue(m.needsFetch(0))
        let a = m.startFetch(0)
        XCTAssertFalse(m.needsFetch(0), "a chunk in flight is not fetched twice")
        XCTAssertEqual(m.inFlight, 1)
        m.progress(0, attempt: a, filled: 1000)
        XCTAssertTrue(m.covers(0..<1000), "the written bytes of a chunk in flight count")
        XCTAssertFalse(m.covers(0..<1001))
        XCTAssertFalse(m.covers(500..<5000), "a range into a chunk not fetched is not covered")
        m.finish(0, attempt: a)
        XCTAssertTrue(m.covers(0..<4096))
        XCTAssertFalse(m.isComplete)
        let b = m.startFetch(2)
        m.finish(2, attempt: b)
        XCTAssertTrue(m.covers(9_000..<50_000), "a range past the end is covered up to the end")
        XCTAssertFalse(m.covers(4000..<9000), "the chunk between is missing")
        let c = m.startFetch(1)
        m.finish(1, attempt: c)
        XCTAssertTrue(m.isComplete)
        XCTAssertEqual(m.states, ChunkMap.complete(size: 10_000, chunkSize: 4096).states)
    }

    func testAFailedFetchFailsItsWaitersAndIsFetchedAgain() {
        var m = ChunkMap(size: 8192, chunkSize: 4096)
        let a = m.startFetch(1)
        let waited = m.attempts(covering: 5000..<6000)
        XCTAssertEqual(waited, [1: a])
        XCTAssertNil(m.failure(of: waited))
        m.fail(1, attempt: a, reason: "connection refused")
        XCTAssertEqual(m.failure(of: waited), "connection refused")
        XCTAssertTrue(m.needsFetch(1), "the next read fetches it again")
        XCTAssertFalse(m.covers(5000..<6000))
        let b = m.startFetch(1)
        XCTAssertNotEqual(a, b)
        XCTAssertNil(m.failure(of: waited), "a new fetch under way is not the failure waited on")
        // A late report of the first fetch changes nothing.
        m.finish(1, attempt: a)
        m.progress(1, attempt: a, filled: 4096)
        XCTAssertFalse(m.covers(5000..<6000))
        m.finish(1, attempt: b)
        XCTAssertTrue(m.covers(5000..<6000))
    }
}
