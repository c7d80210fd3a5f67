@testable import FlinkEngine
import FlinkFixtures
import Foundation
import SnapStore
import XCTest

/// `snapfs job status`: a job's state and recovery point from the store's rules, its parallelism from the
/// JobManager's `GET /jobs/:id`, and a clear word when either cannot be had.
final class FlinkJobStatusTests: XCTestCase {
    func testStateParallelismAndRecoveryPointFromAFakeJobManager() throws {
        let w0 = try FlinkWorkspace(store: 2)
        try w0.importer.refresh()
        var byJob: [String: [Snapshot]] = [:]
        for s in try w0.store.snapshots() where s.kind == .checkpoint { byJob[s.job ?? "?", default: []].append(s) }
        byJob = byJob.mapValues { $0.sorted { Int64($0.externalID!)! < Int64($1.externalID!)! } }
        let jobs = byJob.keys.sorted()
        let running = jobs[0], canceled = jobs[1]
        // Flink names the running job's second-newest checkpoint as its latest completed one.
        let named = byJob[running]!.last!
        let cluster = FakeCluster(writtenAt: FlinkFixtures.writtenAt, jobs: [
            running: .init(state: "RUNNING", latest: (Int64(named.externalID!)!, named.directory!)),
            canceled: .init(state: "CANCELED"),
        ])
        let fake = try cluster.serve { method, path, _ in
            // GET /jobs/:id, as Flink 2.3 answers it (only the fields read here).
            if method == "GET", path == "/jobs/\(running)" {
                return (200, #"{"jid":"\#(running)","state":"RUNNING","vertices":[{"id":"a","parallelism":2},{"id":"b","parallelism":4}]}"#)
            }
            return (404, #"{"errors":["Job could not be found."]}"#)
        }
        defer { fake.stop() }
        let w = try FlinkWorkspace(store: 2, rest: fake.url)
        try w.importer.refresh()
        w.askCluster()
        let engine = try FlinkEngine.forStore(w.store)

        let st = try engine.jobStatus(running)
        XCTAssertEqual(st.job, running)
        XCTAssertEqual(st.state, "RUNNING")
        XCTAssertEqual(st.parallelism, 4, "the highest operator parallelism")
        XCTAssertNil(st.parallelismUnknown)
        XCTAssertEqual(st.recoveryPoint, named.name)
        XCTAssertTrue(st.protected)
        XCTAssertEqual(try engine.jobStatus(String(running.prefix(6))), st, "a prefix names the job")
        XCTAssertTrue(fake.seen.contains("GET /jobs/\(running)"), "\(fake.seen)")

        let gone = try engine.jobStatus(canceled)
        XCTAssertEqual(gone.state, "CANCELED")
        XCTAssertFalse(gone.protected)
        XCTAssertNil(gone.parallelism)
        XCTAssertTrue(gone.parallelismUnknown?.contains("Job could not be found") ?? false, "\(gone)")

        XCTAssertThrowsError(try engine.jobStatus("ffffff")) { e in
            guard case .badInput(let why)? = e as? StoreError else { return XCTFail("\(e)") }
            XCTAssertTrue(why.contains("no job 'ffffff'") && why.contains(running), why)
        }
        XCTAssertThrowsError(try engine.jobStatus("")) { XCTAssertEqual(($0 as? StoreError)?.errno, EINVAL) }

        // The JobManager stops: the job's state is unknown, its newest checkpoint protected, its parallelism unknown
        // with the reason.
        fake.stop()
        w.askCluster()
        let blind = try engine.jobStatus(running)
        XCTAssertEqual(blind.state, "UNKNOWN")
        XCTAssertTrue(blind.protected)
        XCTAssertEqual(blind.recoveryPoint, byJob[running]!.last!.name)
        XCTAssertNil(blind.parallelism)
        XCTAssertNotNil(blind.parallelismUnknown)
    }

    func testWithoutAJobManagerParallelismIsUnknownAndSaysWhy() throws {
        let w = try FlinkWorkspace(store: 2)
        try w.importer.refresh()
        let job = try XCTUnwrap(w.store.jobStatus().jobs.first?.job)
        let st = try FlinkEngine.forStore(w.store).jobStatus(job)
        XCTAssertNil(st.parallelism)
        XCTAssertEqual(st.parallelismUnknown, "no JobManager configured (snapfs init --rest)")
        XCTAssertTrue(st.protected)
        XCTAssertNotNil(st.recoveryPoint)
    }
}
