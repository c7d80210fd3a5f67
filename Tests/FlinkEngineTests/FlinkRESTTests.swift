@testable import FlinkEngine
import FlinkFixtures
import Foundation
import SnapStore
import Synchronization
import XCTest

final class FlinkRESTTests: XCTestCase {
    func testHTTPParsingOfLengthChunkedAndDamagedAnswers() throws {
        let plain = try HTTPClient.parse(Data("HTTP/1.1 202 Accepted\r\nContent-Length: 5\r\n\r\nhello".utf8))
        XCTAssertEqual(plain.status, 202)
        XCTAssertEqual(String(decoding: plain.body, as: UTF8.self), "hello")
        let chunked = try HTTPClient.parse(Data("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;x=y\r\nde\r\n0\r\n\r\n".utf8))
        XCTAssertEqual(String(decoding: chunked.body, as: UTF8.self), "abcde")
        XCTAssertThrowsError(try HTTPClient.parse(Data("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc".utf8)))
        XCTAssertThrowsError(try HTTPClient.parse(Data("garbage".utf8)))
        XCTAssertThrowsError(try HTTPClient.parse(Data("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nffff\r\nab".utf8)))
    }

    /// A CANONICAL savepoint triggered through REST is polled to completion, recorded under the user's label
    /// with its files, and the recovery point comes from `latest.completed`, not from catalog order.
    func testSavepointTriggerPollsImportsAndNamesIt() throws {
        let job = "dd758ebfe2c5e0335122d7ddaf752ba0"
        let workspaceBox = Mutex<URL?>(nil)
        let polls = Mutex(0)
        let savepoint = "savepoints/savepoint-c4f302-a3c72ffbb47e"
        let aside = Mutex<URL?>(nil)
        let fake = try FakeFlink { method, path, body in
            switch (method, path) {
            case ("GET", "/jobs/overview"): return (200, #"{"jobs":[{"jid":"\#(job)","state":"RUNNING"}]}"#)
            case ("GET", "/jobs/\(job)/checkpoints"):
                return (200, #"{"latest":{"completed":{"id":16,"is_savepoint":false,"external_path":"file:/srv/flink-store/checkpoints/\#(job)/chk-16"}}}"#)
            case ("POST", "/jobs/\(job)/savepoints"):
                guard body.contains("\"CANONICAL\"") else { return (400, #"{"errors":["wrong format"]}"#) }
                return (202, #"{"request-id":"r1"}"#)
            case ("GET", "/jobs/\(job)/savepoints/r1"):
                let n = polls.withLock { $0 += 1; return $0 }
                if n < 3 { return (200, #"{"status":{"id":"IN_PROGRESS"}}"#) }
                // Flink finishes writing: the savepoint directory appears.
                if let root = workspaceBox.withLock({ $0 }), let from = aside.withLock({ $0 }) {
                    try? FileManager.default.moveItem(at: from, to: root.appendingPathComponent(savepoint))
                    aside.withLock { $0 = nil }
                }
                return (200, #"{"status":{"id":"COMPLETED"},"operation":{"location":"file:/srv/flink-store/\#(savepoint)"}}"#)
            default: return (404, #"{"errors":["Not found"]}"#)
            }
        }
        defer { fake.stop() }
        let w = try FlinkWorkspace(store: 1, job: job, rest: fake.url)
        let hidden = w.root.deletingLastPathComponent().appendingPathComponent("sp-\(UUID().uuidString)")
        try FileManager.default.moveItem(at: w.root.appendingPathComponent(savepoint), to: hidden)
        aside.withLock { $0 = hidden }
        workspaceBox.withLock { $0 = w.root }
        let engine = FlinkEngine(store: w.store, settings: w.settings, pollInterval: 0.01)
        try engine.importer.refresh()
        // Flink's statistics lag behind its store: chk-17 is complete on disk though latest.completed says 16.
        XCTAssertEqual(w.store.jobStatus().recoveryPoint, "dd758e-chk-17")
        let detail = w.store.jobStatus().jobs.first { $0.job == job }?.detail ?? ""
        XCTAssertTrue(detail.contains("not yet in Flink's statistics"), detail)

        let (request, result) = try w.store.requestSnapshot(engine: engine, format: .canonical, label: "pre-upgrade", source: "test")
        let s = try result.get()
        XCTAssertEqual(request.state, .complete)
        XCTAssertEqual(s.name, "pre-upgrade")
        XCTAssertEqual(s.kind, .user)
        XCTAssertEqual(s.format, .canonical)
        XCTAssertEqual(s.directory, savepoint)
        XCTAssertEqual(try w.store.entries(of: s.id).filter { $0.type == .file }.count, 3)
        XCTAssertGreaterThanOrEqual(polls.withLock { $0 }, 3)
        // Recording the same directory again with the label is a no-op; a pass that got there first under the
        // default name is corrected to the label.
        XCTAssertEqual(try engine.importer.recordDirectory(savepoint, name: "pre-upgrade").id, s.id)
        try w.store.rename("pre-upgrade", to: "savepoint-c4f302-a3c72ffbb47e")
        XCTAssertEqual(try engine.importer.recordDirectory(savepoint, name: "pre-upgrade").name, "pre-upgrade")
        XCTAssertTrue(fake.seen.contains("POST /jobs/\(job)/savepoints"))
    }

    /// The JobManager decides whether the job runs: a cancelled job's newest checkpoint is not protected, and a
    /// running job's recovery point is the checkpoint Flink names.
    func testJobStateAndLatestCheckpointComeFromTheJobManager() throws {
        let job = "dd758ebfe2c5e0335122d7ddaf752ba0"
        let cluster = FakeCluster(writtenAt: FlinkFixtures.writtenAt, jobs: [job: .init(state: "RUNNING", latest: (17, "checkpoints/\(job)/chk-17"))])
        let fake = try cluster.serve()
        defer { fake.stop() }
        let w = try FlinkWorkspace(store: 1, job: job, rest: fake.url)
        try w.importer.refresh()
        XCTAssertEqual(w.store.jobStatus().recoveryPoint, "dd758e-chk-17")
        XCTAssertThrowsError(try w.store.delete("dd758e-chk-17"))
        cluster.set(job, state: "CANCELED")
        w.askCluster()
        XCTAssertEqual(w.store.jobStatus().jobs.first { $0.job == job }?.protected, false)
        XCTAssertNoThrow(try w.store.delete("dd758e-chk-17"))
    }

    /// Questions about the job are answered from the JobManager's latest answer and never wait on it: a JobManager
    /// that hangs is asked by the background poll only, and meanwhile every job's newest checkpoint is protected.
    func testAHangingJobManagerIsNeverAskedFromARequest() throws {
        let job = "dd758ebfe2c5e0335122d7ddaf752ba0"
        let hang = Mutex(true)
        let cluster = FakeCluster(writtenAt: FlinkFixtures.writtenAt, jobs: [job: .init(state: "CANCELED")])
        let fake = try FakeFlink { method, path, _ in
            if hang.withLock({ $0 }) { usleep(600_000) }
            return cluster.answer(method, path) ?? (404, #"{"errors":["Not found"]}"#)
        }
        defer { fake.stop() }
        let w = try FlinkWorkspace(store: 1, job: job, rest: fake.url, rules: FlinkRules(restTimeout: 0.2))
        try w.importer.refresh()
        let asked = fake.seen.count
        XCTAssertEqual(asked, 1, "asked once, when the store was opened")
        let first = w.store.jobStatus()
        XCTAssertTrue(first.detail?.contains("did not answer") == true, first.detail ?? "")
        XCTAssertEqual(first.recoveryPoint, "dd758e-chk-17", "unanswered: the job's newest checkpoint is protected")
        for _ in 0..<5 {
            XCTAssertEqual(w.store.jobStatus().recoveryPoint, first.recoveryPoint)
            XCTAssertThrowsError(try w.store.delete("dd758e-chk-17"))
            _ = try w.store.summaries()
        }
        XCTAssertEqual(fake.seen.count, asked, "no request, delete or listing asked the JobManager")
        hang.withLock { $0 = false }
        // The fake serves one request at a time: a poll may meet the last hanging answer still being served (and
        // time out) before the JobManager answers again, so the background poll is repeated until it is answered.
        let until = Date().addingTimeInterval(20)
        repeat { w.askCluster() } while w.store.jobStatus().jobs.first { $0.job == job }?.state != "CANCELED" && Date() < until
        XCTAssertGreaterThan(fake.seen.count, asked)
        XCTAssertEqual(w.store.jobStatus().jobs.first { $0.job == job }?.state, "CANCELED", "the background answer is used once it comes")
        XCTAssertNoThrow(try w.store.delete("dd758e-chk-17"))
    }

    /// Flink's failure cause reaches the request record; the catalog is unchanged.
    func testFailedSavepointCarriesFlinksCause() throws {
        let job = "dd758ebfe2c5e0335122d7ddaf752ba0"
        let fake = try FakeFlink { method, path, _ in
            switch (method, path) {
            case ("POST", "/jobs/\(job)/savepoints"): return (202, #"{"request-id":"r2"}"#)
            case ("GET", "/jobs/\(job)/savepoints/r2"):
                return (200, #"{"status":{"id":"COMPLETED"},"operation":{"failure-cause":{"class":"java.util.concurrent.CompletionException","stack-trace":"java.util.concurrent.CompletionException: org.apache.flink.runtime.checkpoint.CheckpointException: Checkpoint Coordinator is suspending.\n\tat x"}}}"#)
            default: return (404, #"{"errors":["Not found"]}"#)
            }
        }
        defer { fake.stop() }
        let w = try FlinkWorkspace(store: 1, job: job, rest: fake.url)
        let engine = FlinkEngine(store: w.store, settings: w.settings, pollInterval: 0.01)
        try engine.importer.refresh()
        let before = try w.store.snapshots().count
        let (request, result) = try w.store.requestSnapshot(engine: engine, format: .nativeFull, label: "x1", source: "test")
        guard case .failure(let error) = result else { return XCTFail("succeeded") }
        XCTAssertEqual(error.errno, EIO)
        XCTAssertTrue(request.error?.contains("Checkpoint Coordinator is suspending") == true, request.error ?? "")
        XCTAssertEqual(try w.store.snapshots().count, before)
    }
}
