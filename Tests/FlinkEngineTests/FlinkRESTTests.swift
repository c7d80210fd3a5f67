@testable import FlinkEngine
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
            case ("GET", "/jobs/\(job)"): return (200, #"{"state":"RUNNING"}"#)
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
        XCTAssertTrue(w.store.jobStatus().detail?.contains("not yet in Flink's statistics") == true)

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
        let state = Mutex("RUNNING")
        let fake = try FakeFlink { method, path, _ in
            switch (method, path) {
            case ("GET", "/jobs/\(job)"): return (200, #"{"state":"\#(state.withLock { $0 })"}"#)
            case ("GET", "/jobs/\(job)/checkpoints"):
                return (200, #"{"latest":{"completed":{"id":17,"is_savepoint":false,"external_path":"file:/srv/flink-store/checkpoints/\#(job)/chk-17"}}}"#)
            default: return (404, #"{"errors":["Not found"]}"#)
            }
        }
        defer { fake.stop() }
        let w = try FlinkWorkspace(store: 1, job: job, rest: fake.url)
        try w.importer.refresh()
        XCTAssertEqual(w.store.jobStatus().recoveryPoint, "dd758e-chk-17")
        XCTAssertThrowsError(try w.store.delete("dd758e-chk-17"))
        state.withLock { $0 = "CANCELED" }
        XCTAssertFalse(w.store.jobStatus().running)
        XCTAssertNoThrow(try w.store.delete("dd758e-chk-17"))
    }

    /// A JobManager that does not answer costs one timeout, not one per question: within the retry window the
    /// status is the protective fallback without asking again, and afterwards Flink is asked again.
    func testAHangingJobManagerIsAskedAgainOnlyAfterTheRetryWindow() throws {
        let job = "dd758ebfe2c5e0335122d7ddaf752ba0"
        let hang = Mutex(true)
        let fake = try FakeFlink { method, path, _ in
            if hang.withLock({ $0 }) { usleep(600_000) }
            switch (method, path) {
            case ("GET", "/jobs/\(job)"): return (200, #"{"state":"CANCELED"}"#)
            case ("GET", "/jobs/\(job)/checkpoints"): return (200, #"{"latest":{"completed":null}}"#)
            default: return (404, #"{"errors":["Not found"]}"#)
            }
        }
        defer { fake.stop() }
        let w = try FlinkWorkspace(store: 1, job: job, rest: fake.url)
        try w.importer.refresh()
        w.store.setHooks(FlinkHooks(settings: w.settings, restTimeout: 0.2, retryAfter: 2))
        let first = w.store.jobStatus()
        XCTAssertTrue(first.running, "unanswered: assumed running")
        XCTAssertNotNil(first.recoveryPoint, "and its newest snapshot protected")
        XCTAssertTrue(first.detail?.contains("unreachable") == true, first.detail ?? "")
        let asked = fake.seen.count
        XCTAssertEqual(asked, 1)
        for _ in 0..<5 {
            let again = w.store.jobStatus()
            XCTAssertEqual(again.recoveryPoint, first.recoveryPoint)
            XCTAssertTrue(again.running)
        }
        XCTAssertEqual(fake.seen.count, asked, "not asked again within the window")
        hang.withLock { $0 = false }
        Thread.sleep(forTimeInterval: 2.2)
        XCTAssertFalse(w.store.jobStatus().running, "asked again after the window: Flink says CANCELED")
        XCTAssertGreaterThan(fake.seen.count, asked)
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
