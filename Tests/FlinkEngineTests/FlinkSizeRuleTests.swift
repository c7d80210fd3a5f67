import FlinkEngine
import FlinkFixtures
import Foundation
import SnapStore
import XCTest
#if canImport(Glibc)
import Glibc
#endif

/// Stores whose files are longer than their handles say (changelog files, file-merging physical files).
final class FlinkSizeRuleTests: XCTestCase {
    private var root: URL!
    private var store: Store!
    private var settings: FlinkStoreSettings!
    private var truth: [SyntheticFlinkStore.Snapshot] = []

    override func setUpWithError() throws {
        root = URL(fileURLWithPath: NSTemporaryDirectory()).appendingPathComponent("snapfs-flink-rules-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
        truth = try SyntheticFlinkStore.write(at: root)
        settings = FlinkStoreSettings(restURL: nil, jobID: nil, pathMap: [(from: SyntheticFlinkStore.writtenAt, to: root.path)])
        store = try Store.create(at: root, engine: FlinkStoreSettings.engineName, settings: settings.metaRows, adopting: true,
                                 rules: [FlinkRules()])
        _ = try FlinkEngine.forStore(store)
    }

    override func tearDownWithError() throws {
        store = nil
        try? FileManager.default.removeItem(at: root)
    }

    private var importer: FlinkImporter { FlinkImporter(store: store, settings: settings) }

    private func snapshot(_ directory: String) throws -> Snapshot {
        try XCTUnwrap(try store.snapshots().first { $0.directory == directory }, directory)
    }

    /// Each file is recorded with its own length (what the mount serves) and Flink's rule and required size.
    func testEntriesCarryTheRuleAndTheFilesOwnLength() throws {
        try importer.refresh()
        for t in truth {
            let entries = try store.entries(of: try snapshot(t.directory).id).filter { $0.type == .file && !$0.path.hasSuffix("/_metadata") }
            let recorded = Set(entries.map { "\($0.path) \($0.size) \($0.sizeRule.rawValue) \($0.requiredSize)" })
            let expected = Set(t.files.map { "\($0.path) \($0.length) \($0.rule.rawValue) \($0.required)" })
            XCTAssertEqual(recorded, expected, t.directory)
        }
    }

    /// No false alarms: a changelog file one byte longer than its handle and a physical file longer than the
    /// furthest segment are what Flink restores from. A file shorter than the rule asks is still caught.
    func testVerifyAppliesEachFilesRule() throws {
        let clean = try FlinkVerifier(store: store, settings: settings).verify()
        XCTAssertEqual(clean.snapshots.count, 4)
        XCTAssertEqual(clean.notRestorable, [], "\(clean.snapshots.map(\.problems))")

        // Cut the changelog file to its handle's size (still restorable), then one byte below (not).
        let dstl2 = root.path + "/changelog/\(SyntheticFlinkStore.changelogJob)/dstl-2"
        XCTAssertEqual(truncate(dstl2, 60), 0)
        XCTAssertEqual(try FlinkVerifier(store: store, settings: settings).verify().notRestorable, [])
        XCTAssertEqual(truncate(dstl2, 59), 0)
        // The physical file cut between the two snapshots' furthest segment ends breaks only the later one.
        XCTAssertEqual(truncate(root.path + "/checkpoints/\(SyntheticFlinkStore.mergingJob)/shared/physical-1", 100), 0)
        let broken = try FlinkVerifier(store: store, settings: settings).verify()
        let names = Dictionary(uniqueKeysWithValues: try store.snapshots().map { ($0.directory ?? "", $0.name) })
        let j = "checkpoints/\(SyntheticFlinkStore.changelogJob)", k = "checkpoints/\(SyntheticFlinkStore.mergingJob)"
        XCTAssertEqual(Set(broken.notRestorable), [names["\(j)/chk-2"]!, names["\(k)/chk-2"]!])
        let problems = broken.snapshots.flatMap(\.problems).map(\.problem)
        XCTAssertTrue(problems.contains("size 59, expected at least 60"), "\(problems)")
        XCTAssertTrue(problems.contains("size 100, expected at least 120"), "\(problems)")

        // A whole file keeps the exact rule.
        XCTAssertEqual(truncate(root.path + "/\(j)/shared/materialized-1", 41), 0)
        let grown = try FlinkVerifier(store: store, settings: settings).verify()
        XCTAssertTrue(grown.snapshots.flatMap(\.problems).map(\.problem).contains("size 41, expected 40"))
    }

    /// Changelog checkpoints name files earlier checkpoints wrote: incremental, though HashMap is underneath.
    /// File-merged full checkpoints share a physical file but each writes all its state: full.
    func testFormatFollowsTheReferences() throws {
        try importer.refresh()
        let j = "checkpoints/\(SyntheticFlinkStore.changelogJob)", k = "checkpoints/\(SyntheticFlinkStore.mergingJob)"
        XCTAssertEqual(try snapshot("\(j)/chk-1").format, .nativeIncremental)
        XCTAssertEqual(try snapshot("\(j)/chk-2").format, .nativeIncremental)
        XCTAssertEqual(try snapshot("\(k)/chk-1").format, .nativeFull)
        XCTAssertEqual(try snapshot("\(k)/chk-2").format, .nativeFull)
    }

    /// A catalog recorded before entries had size rules (handle sizes, all exact) is corrected on the next pass.
    func testEarlierRecordsGetTheirRules() throws {
        try importer.refresh()
        let id = try snapshot("checkpoints/\(SyntheticFlinkStore.changelogJob)/chk-2").id
        let dstl = "changelog/\(SyntheticFlinkStore.changelogJob)/dstl-2"
        try store.updateEntryLengths(of: id, [EntryLength(path: dstl, size: 60, sizeRule: .exact, requiredSize: 60)])
        try store.setMeta("flink_size_rules", nil)
        XCTAssertEqual(try store.entries(of: id).first { $0.path == dstl }?.size, 60)
        try importer.refresh()
        let e = try XCTUnwrap(try store.entries(of: id).first { $0.path == dstl })
        XCTAssertEqual([e.size, e.requiredSize], [61, 60])
        XCTAssertEqual(e.sizeRule, .atLeast)
    }

    /// Expired and aborted checkpoints (`chk-N` without `_metadata`) and orphaned segment files are listed by
    /// verify and removed by gc once older than the grace; a `chk-N` a writer may still be filling is kept whole,
    /// and so is every file a snapshot names.
    func testOrphansOfAbandonedCheckpointsAreCollectedAfterTheGrace() throws {
        let k = "checkpoints/\(SyntheticFlinkStore.mergingJob)"
        let old = Date().addingTimeInterval(-7200)
        func write(_ path: String, age: Date?) throws {
            let url = root.appendingPathComponent(path)
            try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
            try Data("orphan \(path)".utf8).write(to: url)
            if let age { try FileManager.default.setAttributes([.modificationDate: age], ofItemAtPath: url.path) }
        }
        func age(_ directory: String) throws {
            try FileManager.default.setAttributes([.modificationDate: old], ofItemAtPath: root.appendingPathComponent(directory).path)
        }
        // Expired long ago: every file and the directory old.
        try write("\(k)/chk-3/channel-state-1", age: old)
        try write("\(k)/chk-3/channel-state-2", age: old)
        try age("\(k)/chk-3")
        // Still being filled: its first file is old, its latest one new.
        try write("\(k)/chk-4/first", age: old)
        try write("\(k)/chk-4/latest", age: nil)
        // An orphaned physical file, and a young one a writer may be appending to.
        try write("\(k)/shared/physical-orphan", age: old)
        try write("\(k)/shared/physical-young", age: nil)
        // A file-merging managed directory of a running job: an old physical file no snapshot names yet, beside
        // one the job is writing now (it may append the next checkpoint's segments to either); and one of a job
        // long gone.
        try write("\(k)/shared/job_\(SyntheticFlinkStore.mergingJob)_op_1_0_2/pooled", age: old)
        try write("\(k)/shared/job_\(SyntheticFlinkStore.mergingJob)_op_1_0_2/current", age: nil)
        try write("\(k)/taskowned/job_\(SyntheticFlinkStore.mergingJob)_tm_gone/stale", age: old)
        try age("\(k)/shared/job_\(SyntheticFlinkStore.mergingJob)_op_1_0_2")
        try age("\(k)/taskowned/job_\(SyntheticFlinkStore.mergingJob)_tm_gone")
        // An empty chk-N just made by Flink.
        try FileManager.default.createDirectory(at: root.appendingPathComponent("\(k)/chk-5"), withIntermediateDirectories: true)
        let physical = root.appendingPathComponent("\(k)/shared/physical-1")
        try FileManager.default.setAttributes([.modificationDate: old], ofItemAtPath: physical.path)

        let verify = try FlinkVerifier(store: store, settings: settings).verify()
        XCTAssertEqual(Set(verify.unreferenced), ["\(k)/chk-3/channel-state-1", "\(k)/chk-3/channel-state-2", "\(k)/chk-4/first",
                                                  "\(k)/chk-4/latest", "\(k)/shared/physical-orphan", "\(k)/shared/physical-young",
                                                  "\(k)/shared/job_\(SyntheticFlinkStore.mergingJob)_op_1_0_2/pooled", "\(k)/shared/job_\(SyntheticFlinkStore.mergingJob)_op_1_0_2/current", "\(k)/taskowned/job_\(SyntheticFlinkStore.mergingJob)_tm_gone/stale"])
        XCTAssertEqual(verify.notRestorable, [])

        let gc = try FlinkEngine(store: store, settings: settings).gc(grace: 3600)
        XCTAssertEqual(Set(gc.removedFiles), ["\(k)/chk-3/channel-state-1", "\(k)/chk-3/channel-state-2", "\(k)/shared/physical-orphan",
                                              "\(k)/taskowned/job_\(SyntheticFlinkStore.mergingJob)_tm_gone/stale"])
        XCTAssertEqual(Set(gc.keptYoungerThanGrace), ["\(k)/chk-4/first", "\(k)/chk-4/latest", "\(k)/shared/physical-young",
                                                      "\(k)/shared/job_\(SyntheticFlinkStore.mergingJob)_op_1_0_2/pooled", "\(k)/shared/job_\(SyntheticFlinkStore.mergingJob)_op_1_0_2/current"])
        func exists(_ p: String) -> Bool { FileManager.default.fileExists(atPath: root.path + "/" + p) }
        XCTAssertFalse(exists("\(k)/chk-3"), "the emptied expired checkpoint directory goes too")
        XCTAssertTrue(exists("\(k)/chk-4/first"))
        XCTAssertTrue(exists("\(k)/chk-5"), "a young empty chk-N may be a writer's")
        XCTAssertTrue(exists("\(k)/shared/physical-1"))
        let after = try FlinkVerifier(store: store, settings: settings).verify()
        XCTAssertEqual(after.notRestorable, [])
        XCTAssertEqual(Set(after.unreferenced), ["\(k)/chk-4/first", "\(k)/chk-4/latest", "\(k)/shared/physical-young",
                                                 "\(k)/shared/job_\(SyntheticFlinkStore.mergingJob)_op_1_0_2/pooled", "\(k)/shared/job_\(SyntheticFlinkStore.mergingJob)_op_1_0_2/current"])
    }
}
