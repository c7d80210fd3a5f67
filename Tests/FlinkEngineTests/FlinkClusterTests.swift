@testable import FlinkEngine
import FlinkFixtures
import Foundation
import SnapStore
import XCTest
#if canImport(Glibc)
import Glibc
#endif

/// A Flink store holds one directory per job: every job's recovery point is protected, by the JobManager's word
/// where it answers and by each job's newest checkpoint (by checkpoint id) where it does not.
final class FlinkClusterTests: XCTestCase {
    /// Each job's checkpoints in the catalog, by checkpoint id.
    private func checkpointsByJob(_ store: Store) throws -> [String: [Snapshot]] {
        var out: [String: [Snapshot]] = [:]
        for s in try store.snapshots() where s.kind == .checkpoint { out[s.job ?? "?", default: []].append(s) }
        return out.mapValues { $0.sorted { Int64($0.externalID!)! < Int64($1.externalID!)! } }
    }

    private func isBusy(_ error: Error) -> Bool {
        if case .busy? = error as? StoreError { return true }
        return false
    }

    /// Every fixture store, opened as a new user would: `(name, root, store)`.
    private func everyFixtureStore(rest: String? = nil) throws -> [(String, URL, Store)] {
        var out: [(String, URL, Store)] = []
        for number in [1, 2] {
            let w = try FlinkWorkspace(store: number, rest: rest)
            addTeardownBlock { _ = w }
            try w.importer.refresh()
            out.append(("store-\(number)", w.root, w.store))
        }
        for layout in LayoutFixtures.layouts {
            let root = try LayoutFixtures.copy(layout)
            addTeardownBlock { try? FileManager.default.removeItem(at: root) }
            let settings = FlinkStoreSettings(restURL: rest, pathMap: [(from: LayoutFixtures.writtenAt(layout), to: root.path)])
            let store = try Store.create(at: root, engine: FlinkStoreSettings.engineName, settings: settings.metaRows, adopting: true,
                                         rules: [FlinkRules()])
            try FlinkEngine.forStore(store).importer.refresh()
            out.append((layout, root, store))
        }
        return out
    }

    /// Without a JobManager, and with one that does not answer, the newest checkpoint of every job in every
    /// fixture store is refused with EBUSY and the job named, and each job's older checkpoints may go.
    func testWithoutAJobManagerEveryJobsNewestCheckpointIsProtected() throws {
        for rest in [nil, "http://127.0.0.1:9"] as [String?] {
            for (name, _, store) in try everyFixtureStore(rest: rest) {
                let byJob = try checkpointsByJob(store)
                XCTAssertFalse(byJob.isEmpty, name)
                if name.hasPrefix("store-") { XCTAssertGreaterThanOrEqual(byJob.count, 4, "\(name) holds several jobs") }
                let status = store.jobStatus()
                XCTAssertEqual(Set(status.jobs.map(\.job)), Set(byJob.keys), name)
                for (job, checkpoints) in byJob {
                    let newest = checkpoints.last!
                    let row = try XCTUnwrap(status.jobs.first { $0.job == job })
                    XCTAssertEqual(row.state, "UNKNOWN")
                    XCTAssertTrue(row.protected)
                    XCTAssertEqual(row.recoveryPoint, newest.name, "\(name) \(job)")
                    XCTAssertTrue(try store.report(newest.name).recoveryPoint)
                    XCTAssertThrowsError(try store.delete(newest.name), "\(name) \(newest.name)") { error in
                        XCTAssertTrue(isBusy(error), "\(error)")
                        XCTAssertTrue("\(error)".contains(job), "\(error)")
                    }
                }
                // Older checkpoints are nobody's recovery point.
                for (_, checkpoints) in byJob {
                    for older in checkpoints.dropLast() { XCTAssertFalse(store.jobStatus().protects(older.name), older.name) }
                }
                if let (_, checkpoints) = byJob.first(where: { $0.value.count > 1 }) {
                    XCTAssertNoThrow(try store.delete(checkpoints[0].name), name)
                }
                for (_, checkpoints) in byJob { XCTAssertNoThrow(try store.snapshot(named: checkpoints.last!.name)) }
            }
        }
    }

    /// The JobManager names each running job's recovery point; a job it reports CANCELED, FINISHED or FAILED is
    /// no longer protected, and `show` says which snapshot is its last restorable one; a job it does not know keeps
    /// its newest checkpoint protected.
    func testTheClusterDecidesJobByJob() throws {
        let w0 = try FlinkWorkspace(store: 2)
        try w0.importer.refresh()
        let byJob = try checkpointsByJob(w0.store)
        let jobs = byJob.keys.sorted()
        XCTAssertEqual(jobs.count, 5)
        // jobs[0] runs and Flink names its newest checkpoint; jobs[1] runs, Flink names its oldest, but newer ones
        // are complete on disk; jobs[2] is CANCELED, jobs[3] FINISHED; jobs[4] is unknown to the cluster.
        let running = jobs[0], lagging = jobs[1], canceled = jobs[2], finished = jobs[3], unknown = jobs[4]
        func directory(_ s: Snapshot) -> String { s.directory! }
        let named = byJob[running]!.last!
        let cluster = FakeCluster(writtenAt: FlinkFixtures.writtenAt, jobs: [
            running: .init(state: "RUNNING", latest: (Int64(named.externalID!)!, directory(named))),
            lagging: .init(state: "RUNNING", latest: (Int64(byJob[lagging]![0].externalID!)!, directory(byJob[lagging]![0]))),
            canceled: .init(state: "CANCELED"),
            finished: .init(state: "FINISHED"),
        ])
        let fake = try cluster.serve()
        defer { fake.stop() }
        let w = try FlinkWorkspace(store: 2, rest: fake.url)
        try w.importer.refresh()
        w.askCluster()
        let status = w.store.jobStatus()
        func row(_ j: String) throws -> JobRecovery { try XCTUnwrap(status.jobs.first { $0.job == j }, j) }
        XCTAssertEqual(try row(running).recoveryPoint, named.name, "Flink's latest.completed")
        XCTAssertEqual(try row(lagging).recoveryPoint, byJob[lagging]!.last!.name, "a newer checkpoint complete on disk")
        XCTAssertEqual(try row(unknown).recoveryPoint, byJob[unknown]!.last!.name)
        XCTAssertTrue(try row(unknown).protected)
        XCTAssertEqual(try row(canceled).state, "CANCELED")
        XCTAssertFalse(try row(canceled).protected)
        XCTAssertFalse(try row(finished).protected)

        // Older checkpoints of running jobs are nobody's recovery point.
        XCTAssertNoThrow(try w.store.delete(byJob[running]![0].name))
        XCTAssertNoThrow(try w.store.delete(byJob[lagging]![0].name), "named by Flink's statistics, but a newer one is complete")
        for protected in [named.name, byJob[lagging]!.last!.name, byJob[unknown]!.last!.name] {
            XCTAssertThrowsError(try w.store.delete(protected), protected) { XCTAssertTrue(self.isBusy($0)) }
        }
        // The cancelled job's newest snapshot: `show` says it is the job's last restorable one, and it may go.
        let last = try XCTUnwrap(try row(canceled).newest)
        let report = try w.store.report(last)
        XCTAssertEqual(report.lastRestorableOf?.job, canceled)
        XCTAssertEqual(report.lastRestorableOf?.state, "CANCELED")
        XCTAssertTrue(report.deletable)
        XCTAssertNoThrow(try w.store.delete(last))
        XCTAssertNoThrow(try w.store.delete(byJob[finished]!.last!.name))

        // The JobManager stops answering: from the next poll on, every job's newest checkpoint is protected again.
        fake.stop()
        w.askCluster()
        let fallback = w.store.jobStatus()
        XCTAssertTrue(fallback.jobs.allSatisfy { $0.protected && $0.state == "UNKNOWN" }, "\(fallback.jobs)")
        let newestOfRunning = try XCTUnwrap(try checkpointsByJob(w.store)[running]?.last)
        XCTAssertThrowsError(try w.store.delete(newestOfRunning.name)) { XCTAssertTrue(self.isBusy($0)) }
    }

    /// An answer older than the rules allow is not used: the fallback protects as if there were no answer.
    func testAnOldAnswerIsNotUsed() throws {
        let job = "c4f302458e6451f29e233030dfe8535c"
        let cluster = FakeCluster(writtenAt: FlinkFixtures.writtenAt, jobs: [job: .init(state: "CANCELED")])
        let fake = try cluster.serve()
        defer { fake.stop() }
        let w = try FlinkWorkspace(store: 1, rest: fake.url, rules: FlinkRules(answerMaximumAge: 0))
        try w.importer.refresh()
        Thread.sleep(forTimeInterval: 0.01)
        let row = try XCTUnwrap(w.store.jobStatus().jobs.first { $0.job == job })
        XCTAssertTrue(row.protected)
        XCTAssertTrue(row.detail.contains("last answered"), row.detail)
        XCTAssertEqual(row.recoveryPoint, "c4f302-chk-13")
    }

    /// A copied store can give every `_metadata` the same mtime (cp, rsync without -t, git), or even reverse them:
    /// within a job, "newest" and catalog order still follow the checkpoint id.
    func testOrderWithinAJobIsByCheckpointIdWhateverTheFileTimes() throws {
        for reversed in [false, true] {
            let root = try FlinkFixtures.copy(store: 1)
            addTeardownBlock { try? FileManager.default.removeItem(at: root) }
            let metadata = FileManager.default.enumerator(atPath: root.path)!.compactMap { $0 as? String }.filter { $0.hasSuffix("/_metadata") }
            XCTAssertEqual(metadata.count, 14)
            for path in metadata {
                // Equal: one time for all. Reversed: the higher the checkpoint id, the older the file.
                let id = Double(path.split(separator: "/").dropLast().last.flatMap { FlinkImporter.checkpointNumber(String($0)) } ?? 0)
                var times = [timespec(tv_sec: reversed ? 1_700_000_000 - Int(id) * 60 : 1_700_000_000, tv_nsec: 0),
                             timespec(tv_sec: reversed ? 1_700_000_000 - Int(id) * 60 : 1_700_000_000, tv_nsec: 0)]
                XCTAssertEqual(utimensat(AT_FDCWD, root.path + "/" + path, &times, 0), 0)
            }
            let settings = FlinkStoreSettings(pathMap: [(from: FlinkFixtures.writtenAt, to: root.path)])
            let store = try Store.create(at: root, engine: FlinkStoreSettings.engineName, settings: settings.metaRows, adopting: true,
                                         rules: [FlinkRules()])
            try FlinkEngine.forStore(store).importer.refresh()
            let byJob = try checkpointsByJob(store)
            for (job, checkpoints) in byJob {
                // Catalog order (what `list` shows, oldest first) within the job is by id.
                let catalogOrder = try store.snapshots().filter { $0.job == job && $0.kind == .checkpoint }.map(\.name)
                XCTAssertEqual(catalogOrder, checkpoints.map(\.name), "reversed=\(reversed) \(job)")
                XCTAssertEqual(store.jobStatus().jobs.first { $0.job == job }?.recoveryPoint, checkpoints.last!.name, "reversed=\(reversed) \(job)")
                XCTAssertThrowsError(try store.delete(checkpoints.last!.name))
            }
            XCTAssertEqual(byJob["c4f302458e6451f29e233030dfe8535c"]?.last?.name, "c4f302-chk-13")
        }
    }

    /// Times shown come from Flink's checkpoint history while the JobManager answers, else from `_metadata`.
    func testTimesComeFromTheCheckpointHistoryWhereItAnswers() throws {
        let job = "dd758ebfe2c5e0335122d7ddaf752ba0"
        let cluster = FakeCluster(writtenAt: FlinkFixtures.writtenAt, jobs: [
            job: .init(state: "RUNNING", latest: (17, "checkpoints/\(job)/chk-17"),
                       history: [16: (1_600_000_000_000, 1_600_000_002_500), 17: (1_600_000_010_000, 1_600_000_011_000)]),
        ])
        let fake = try cluster.serve()
        defer { fake.stop() }
        let w = try FlinkWorkspace(store: 1, rest: fake.url)
        try w.importer.refresh()
        let mtime = try XCTUnwrap((try FileManager.default.attributesOfItem(atPath: w.root.path + "/checkpoints/\(job)/chk-15/_metadata")[.modificationDate] as? Date))
        let rows = Dictionary(uniqueKeysWithValues: try w.store.summaries().map { ($0.name, $0) })
        XCTAssertEqual(rows["dd758e-chk-16"]?.createdAt, 1_600_000_000)
        XCTAssertEqual(rows["dd758e-chk-16"]?.completedAt, 1_600_000_002.5)
        XCTAssertEqual(try w.store.report("dd758e-chk-17").completedAt, 1_600_000_011)
        // Not in Flink's history: the `_metadata` mtime stands.
        XCTAssertEqual(try XCTUnwrap(rows["dd758e-chk-15"]?.completedAt), mtime.timeIntervalSince1970, accuracy: 0.001)
        fake.stop()
        w.askCluster()
        XCTAssertNotEqual(try w.store.summaries().first { $0.name == "dd758e-chk-16" }?.createdAt, 1_600_000_000)
    }
}

/// Opening a store binds its engine's rules for the life of the handle: a Flink store cannot be had without them.
final class FlinkOpeningTests: XCTestCase {
    /// Every public way to get a handle on a Flink store: refused without Flink's rules (store untouched), and
    /// with them the rules apply (every job's newest checkpoint protected, caught up with Flink before a delete).
    func testEveryEntryPointBindsFlinksRules() throws {
        let w = try FlinkWorkspace(store: 1)
        try w.importer.refresh()
        let catalog = w.root.appendingPathComponent("catalog.sqlite")
        let before = try Data(contentsOf: catalog)
        XCTAssertThrowsError(try Store.open(at: w.root)) { error in
            guard case .badInput(let why)? = error as? StoreError else { return XCTFail("\(error)") }
            XCTAssertTrue(why.contains("'flink'"), why)
        }
        XCTAssertThrowsError(try Store.open(at: w.root, rules: [LocalRules()]))
        XCTAssertEqual(try Data(contentsOf: catalog), before, "a refused open changes nothing")

        // Creating a Flink store without the rules is refused before anything is written.
        let fresh = try FlinkFixtures.copy(store: 1)
        defer { try? FileManager.default.removeItem(at: fresh) }
        XCTAssertThrowsError(try Store.create(at: fresh, engine: FlinkStoreSettings.engineName, adopting: true))
        XCTAssertFalse(FileManager.default.fileExists(atPath: fresh.appendingPathComponent("catalog.sqlite").path))

        let created = try Store.create(at: fresh, engine: FlinkStoreSettings.engineName,
                                       settings: FlinkStoreSettings(pathMap: [(from: FlinkFixtures.writtenAt, to: fresh.path)]).metaRows,
                                       adopting: true, rules: [FlinkRules()])
        let opened: [(String, Store)] = [
            ("Store.open(rules:)", try Store.open(at: w.root, rules: [FlinkRules()])),
            ("FlinkEngine.openStore", try FlinkEngine.openStore(at: w.root)),
            ("Store.create(rules:)", created),
        ]
        for (entry, store) in opened {
            XCTAssertTrue(store.hooks is FlinkHooks, entry)
            // A delete catches up with Flink first: the new store's catalog is empty until then.
            XCTAssertThrowsError(try store.delete("c4f302-chk-13"), entry) { error in
                guard case .busy(_, let why)? = error as? StoreError else { return XCTFail("\(entry): \(error)") }
                XCTAssertTrue(why.contains("c4f302458e6451f29e233030dfe8535c"), "\(entry): \(why)")
            }
            XCTAssertEqual(store.jobStatus().jobs.count, 4, entry)
            XCTAssertEqual(store.jobStatus().protectedNames, ["4b9133-chk-5", "c4f302-chk-13", "dd758e-chk-17", "e9201c-chk-13"], entry)
        }
    }
}
