import FlinkFixtures
import Foundation
import XCTest

/// `MNT/.snapfs/jobs/<job>/status` on a mounted Flink store, against a fake JobManager: the same document as
/// `snapfs job status --json`, read-only, one directory per job of the store.
final class JobStatusMountTests: XCTestCase {
    func testJobsDirectoryShowsEachJobsStatus() throws {
        guard FileManager.default.isExecutableFile(atPath: "/bin/fusermount3"), FileManager.default.fileExists(atPath: "/dev/fuse") else {
            if ProcessInfo.processInfo.environment["SNAPFS_SKIP_MOUNT_TESTS"] != nil { throw XCTSkip("mount tests skipped") }
            return XCTFail("this test mounts for real: it needs /dev/fuse and fusermount3 (Scripts/install-deps)")
        }
        let fixtures = ProcessInfo.processInfo.environment["SNAPFS_FLINK_FIXTURES"] ?? "/work/shared/fixtures/flink-2.3"
        let scratch = try Scratch()
        let store = scratch.path("store"), mnt = scratch.path("mnt")
        try FileManager.default.copyItem(atPath: fixtures + "/store-2", toPath: store)
        try FileManager.default.createDirectory(atPath: mnt, withIntermediateDirectories: true)
        let cluster = FakeCluster(writtenAt: "file:/srv/flink-store", jobs: [:])
        let running = "e91e7d6dd164333d641e1dc4652079b3"
        let fake = try cluster.serve { method, path, _ in
            if method == "GET", path == "/jobs/\(running)" {
                return (200, #"{"jid":"\#(running)","state":"RUNNING","vertices":[{"id":"a","parallelism":3},{"id":"b","parallelism":1}]}"#)
            }
            return (404, #"{"errors":["Job could not be found."]}"#)
        }
        defer { fake.stop() }
        cluster.jobs.withLock { $0[running] = .init(state: "RUNNING") }
        let created = try snapfs("init", store, "--engine", "flink", "--path-map", "file:/srv/flink-store=\(store)", "--rest", fake.url)
        XCTAssertEqual(created.status, 0, created.err)
        let statusOut = try snapfs("status", store, "--json")
        let st = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(statusOut.out.utf8)) as? [String: Any])
        let jobs = try XCTUnwrap((st["job"] as? [String: Any])?["jobs"] as? [[String: Any]]).compactMap { $0["job"] as? String }.sorted()
        XCTAssertEqual(jobs.count, 5)

        let daemon = try ServedStore([store, mnt, "--listen", "127.0.0.1:0"], command: "mount")
        defer {
            _ = try? Process.run(URL(fileURLWithPath: "/bin/fusermount3"), arguments: ["-u", mnt]).waitUntilExit()
            daemon.stop()
        }
        let statusFile = mnt + "/.snapfs/jobs/\(running)/status"
        // The daemon asks the JobManager in the background; until its first answer the job's state is UNKNOWN, and
        // until the first answer about the job's parallelism that says it is being asked.
        var document: [String: Any] = [:]
        for _ in 0..<100 {
            if let d = FileManager.default.contents(atPath: statusFile),
               let o = try? JSONSerialization.jsonObject(with: d) as? [String: Any], o["state"] as? String == "RUNNING",
               o["parallelism"] != nil {
                document = o
                break
            }
            Thread.sleep(forTimeInterval: 0.1)
        }
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: mnt + "/.snapfs/jobs").sorted(), jobs)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: mnt + "/.snapfs/jobs/\(running)").sorted(),
                       ["parallelism", "restart", "status", "stop", "upgrade"])
        XCTAssertEqual(document["state"] as? String, "RUNNING", "\(document)")
        XCTAssertEqual(document["parallelism"] as? Int, 3)
        XCTAssertEqual(document["protected"] as? Bool, true)
        let cli = try snapfs("job", "status", store, running, "--json")
        XCTAssertEqual(cli.status, 0, cli.err)
        let cliDocument = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(cli.out.utf8)) as? [String: Any])
        XCTAssertEqual(NSDictionary(dictionary: document), NSDictionary(dictionary: cliDocument))

        // REST answers the same document; a local store has no jobs.
        let rest = try curl("GET", daemon.base + "/v1/jobs/" + String(running.prefix(6)))
        XCTAssertEqual(rest.status, 200, rest.body)
        XCTAssertEqual(NSDictionary(dictionary: rest.object), NSDictionary(dictionary: cliDocument))
        let unknown = try curl("GET", daemon.base + "/v1/jobs/ffffff")
        XCTAssertEqual(unknown.status, 400, unknown.body)
        XCTAssertTrue((unknown.object["error"] as? String ?? "").contains("no job 'ffffff'"), unknown.body)

        // A job the JobManager does not know: its state is UNKNOWN, its parallelism unknown with Flink's reason.
        let other = try XCTUnwrap(jobs.first { $0 != running })
        var otherDoc: [String: Any] = [:]
        for _ in 0..<100 {
            otherDoc = try XCTUnwrap(try JSONSerialization.jsonObject(with: XCTUnwrap(FileManager.default.contents(atPath: mnt + "/.snapfs/jobs/\(other)/status"))) as? [String: Any])
            if !(otherDoc["parallelismUnknown"] as? String ?? "").contains("being asked") { break }
            Thread.sleep(forTimeInterval: 0.1)
        }
        XCTAssertNil(otherDoc["parallelism"])
        XCTAssertTrue((otherDoc["parallelismUnknown"] as? String ?? "").contains("Job could not be found"), "\(otherDoc)")

        // Read-only, and nothing for a job that is not there.
        XCTAssertThrowsError(try Data("x".utf8).write(to: URL(fileURLWithPath: statusFile)))
        XCTAssertFalse(FileManager.default.fileExists(atPath: mnt + "/.snapfs/jobs/ffffffffffffffffffffffffffffffff"))
    }
}
