import FlinkEngine
import FlinkFixtures
import Foundation
import SnapStore
import XCTest

/// Real stores of each state layout (file merging, changelog, unaligned checkpoints, ForSt) against what Flink's
/// own deserializer says of them (`Refs2.java`).
final class FlinkLayoutTests: XCTestCase {
    private func open(_ layout: String) throws -> (URL, Store, FlinkStoreSettings) {
        let root = try LayoutFixtures.copy(layout)
        addTeardownBlock { try? FileManager.default.removeItem(at: root) }
        let settings = FlinkStoreSettings(restURL: nil, jobID: nil, pathMap: [(from: LayoutFixtures.writtenAt(layout), to: root.path)])
        let store = try Store.create(at: root, engine: FlinkStoreSettings.engineName, settings: settings.metaRows, adopting: true,
                                 rules: [FlinkRules()])
        _ = try FlinkEngine.forStore(store)
        return (root, store, settings)
    }

    /// Every snapshot is recorded with exactly the files Flink names, each with Flink's size rule and required
    /// size, and with the length the file really has.
    func testFileSetsAndSizeRulesEqualFlinks() throws {
        for layout in LayoutFixtures.layouts {
            let truth = try LayoutFixtures.truth(layout)
            XCTAssertFalse(truth.isEmpty, layout)
            let (root, store, settings) = try open(layout)
            let report = try FlinkImporter(store: store, settings: settings).refresh()
            XCTAssertEqual(report.unreadable.map(\.directory), [], layout)
            XCTAssertEqual(Set(try store.snapshots().compactMap(\.directory)), Set(truth.map(\.directory)), layout)
            for t in truth {
                let s = try XCTUnwrap(try store.snapshots().first { $0.directory == t.directory }, "\(layout) \(t.directory)")
                XCTAssertEqual(s.externalID, String(t.checkpointId))
                let files = try store.entries(of: s.id).filter { $0.type == .file && $0.path != t.directory + "/_metadata" }
                XCTAssertEqual(Set(files.map { "\($0.path) \($0.sizeRule.rawValue) \($0.requiredSize)" }),
                               Set(t.files.map { "\($0.path) \($0.rule.rawValue) \($0.required)" }), "\(layout) \(t.directory)")
                for e in files {
                    let length = (try? FileManager.default.attributesOfItem(atPath: root.path + "/" + e.path)[.size] as? Int).flatMap { $0 }
                    if let length { XCTAssertEqual(e.size, Int64(length), "\(layout) \(e.path): recorded with its own length") }
                }
            }
        }
    }

    /// verify's verdicts are Flink's exactly: no false alarm on a file-merged or changelog snapshot.
    func testVerifyEqualsFlinksRestorableVerdicts() throws {
        for layout in LayoutFixtures.layouts {
            let truth = try LayoutFixtures.truth(layout)
            let (_, store, settings) = try open(layout)
            let report = try FlinkVerifier(store: store, settings: settings).verify()
            let verdicts = Dictionary(uniqueKeysWithValues: report.snapshots.compactMap { s in s.directory.map { ($0, s.restorable) } })
            for t in truth {
                XCTAssertEqual(verdicts[t.directory], t.restorable, "\(layout) \(t.directory): \(report.snapshots.first { $0.directory == t.directory }?.problems ?? [])")
            }
            XCTAssertEqual(report.unreadable.map(\.directory), [], layout)
        }
    }
}
