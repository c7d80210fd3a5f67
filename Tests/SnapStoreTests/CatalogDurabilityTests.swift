import Foundation
import GRDB
import Synchronization
@testable import SnapStore
import XCTest

/// The catalog flushes every commit: `synchronous = FULL` on the writer and on every reader the pool opens.
final class CatalogDurabilityTests: XCTestCase {
    func testEveryCatalogConnectionRunsWithSynchronousFull() throws {
        let w = try Workspace()
        XCTAssertEqual(try w.store.db.writeWithoutTransaction { try Int.fetchOne($0, sql: "PRAGMA synchronous") }, Catalog.fullSynchronous)
        // Reads that overlap make the pool open several reader connections; each must say FULL too.
        let levels = Mutex<[Int]>([])
        let store = w.store
        DispatchQueue.concurrentPerform(iterations: 4) { _ in
            let level = try? store.db.read { db -> Int? in
                usleep(50_000)
                return try Int.fetchOne(db, sql: "PRAGMA synchronous")
            }
            levels.withLock { $0.append((level ?? nil) ?? -1) }
        }
        XCTAssertEqual(levels.withLock { $0 }, Array(repeating: Catalog.fullSynchronous, count: 4))
        // And after reopening, as every command does.
        let again = try Store.open(at: w.storeURL)
        XCTAssertEqual(try Catalog.synchronousLevels(again.db), [Catalog.fullSynchronous, Catalog.fullSynchronous])
    }
}
