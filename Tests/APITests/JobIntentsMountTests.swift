import FlinkFixtures
import Foundation
import XCTest

/// The job intents through all three interfaces of a real daemon (`snapfs mount … --listen`) against a fake
/// JobManager: `snapfs job …`, real `echo`/`cat` on `MNT/.snapfs/jobs/<job>/…`, and curl on the REST API.
final class JobIntentsMountTests: XCTestCase {
    /// Runs `bash -c SCRIPT`: the exit status and standard error.
    func sh(_ script: String) throws -> (status: Int32, err: String) {
        let p = Process()
        // bash, whose echo says why a write failed (dash's says "I/O error" whatever the errno).
        p.executableURL = URL(fileURLWithPath: "/bin/bash")
        p.arguments = ["-c", script]
        let err = Pipe()
        p.standardError = err
        try p.run()
        let e = err.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return (p.terminationStatus, String(decoding: e, as: UTF8.self))
    }

    func json(_ text: String) throws -> [String: Any] {
        try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any], text)
    }

    func testIntentsThroughTheCommandLineTheMountAndREST() throws {
        guard FileManager.default.isExecutableFile(atPath: "/bin/fusermount3"), FileManager.default.fileExists(atPath: "/dev/fuse") else {
            if ProcessInfo.processInfo.environment["SNAPFS_SKIP_MOUNT_TESTS"] != nil { throw XCTSkip("mount tests skipped") }
            return XCTFail("this test mounts for real: it needs /dev/fuse and fusermount3 (Scripts/install-deps)")
        }
        let fixtures = ProcessInfo.processInfo.environment["SNAPFS_FLINK_FIXTURES"] ?? "/work/shared/fixtures/flink-2.3"
        let scratch = try Scratch()
        let store = scratch.path("store"), mnt = scratch.path("mnt"), jarFile = scratch.path("statejob.jar")
        try FileManager.default.copyItem(atPath: fixtures + "/store-2", toPath: store)
        try FileManager.default.createDirectory(atPath: mnt, withIntermediateDirectories: true)
        try Data("PK a jar".utf8).write(to: URL(fileURLWithPath: jarFile))
        let first = "e91e7d6dd164333d641e1dc4652079b3", second = "02ab6bf33f13c08795f99e9650cf1b17"
        let cluster = FakeCluster(writtenAt: "file:/srv/flink-store", jobs: [first: .init(state: "RUNNING"), second: .init(state: "RUNNING")])
        let manager = FakeJobManager(cluster: cluster) { job, _ in
            // As Flink writes a savepoint: a real one of the fixtures, copied under the job's prefix.
            let name = "savepoint-\(job.prefix(6))-\(UUID().uuidString.replacingOccurrences(of: "-", with: "").lowercased().prefix(12))"
            // Complete before it appears under its name, as Flink's `_metadata` is written last.
            try? FileManager.default.copyItem(atPath: store + "/savepoints/savepoint-921f15-e02738e55fb2", toPath: store + "/savepoints/." + name)
            _ = rename(store + "/savepoints/." + name, store + "/savepoints/" + name)
            return "file:/srv/flink-store/savepoints/\(name)"
        }
        manager.parallelism.withLock { $0[first] = 1; $0[second] = 1 }
        let fake = try manager.serve()
        defer { fake.stop() }
        XCTAssertEqual(try snapfs("init", store, "--engine", "flink", "--path-map", "file:/srv/flink-store=\(store)", "--rest", fake.url).status, 0)

        // The command line: a jar recorded per job; bad arguments named, exit 2, nothing asked of Flink.
        let noJar = try snapfs("job", "jar", store, first)
        XCTAssertEqual(noJar.status, 0, noJar.err)
        XCTAssertTrue(noJar.out.contains("no jar recorded for job"), noJar.out)
        for job in [first, second] {
            let r = try snapfs("job", "jar", store, job, "--jar", jarFile, "--entry-class", "demo.StateJob", "--json")
            XCTAssertEqual(r.status, 0, r.err)
            XCTAssertEqual(try json(r.out)["entryClass"] as? String, "demo.StateJob")
        }
        let badFormat = try snapfs("job", "stop", store, first, "--format", "fast")
        XCTAssertEqual(badFormat.status, 2)
        XCTAssertTrue(badFormat.err.contains("'fast' is not one of canonical, native"), badFormat.err)
        XCTAssertEqual(try snapfs("job", "rescale", store, "ffffff", "2").status, 2)
        XCTAssertEqual(try snapfs("job", "restart", store, first, "--from", "no-such-snapshot").status, 3)
        XCTAssertTrue(manager.stops.withLock { $0.isEmpty })

        let daemon = try ServedStore([store, mnt, "--listen", "127.0.0.1:0"], command: "mount")
        defer {
            _ = try? Process.run(URL(fileURLWithPath: "/bin/fusermount3"), arguments: ["-u", mnt]).waitUntilExit()
            daemon.stop()
        }
        let before = try curl("GET", daemon.base + "/metrics").body
        let dir = mnt + "/.snapfs/jobs/\(first)"
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir).sorted(), ["parallelism", "restart", "status", "stop", "upgrade"])
        XCTAssertEqual(try String(contentsOfFile: dir + "/parallelism", encoding: .utf8), "1\n")
        XCTAssertTrue(try String(contentsOfFile: dir + "/restart", encoding: .utf8).contains("--from SNAPSHOT"))

        // echo N > parallelism: returns once the job runs at N, as a new job started from a native savepoint.
        let rescaled = try sh("echo 2 > \(dir)/parallelism")
        XCTAssertEqual(rescaled.status, 0, rescaled.err)
        let run = try XCTUnwrap(manager.runs.withLock { $0.last })
        XCTAssertEqual(run.parallelism, 2)
        XCTAssertEqual(cluster.jobs.withLock { $0[run.job]?.state }, "RUNNING")
        XCTAssertEqual(manager.stops.withLock { $0.map(\.format) }, ["NATIVE"])
        let requests = try FileManager.default.contentsOfDirectory(atPath: mnt + "/.snapfs/requests").sorted { Int($0.dropLast(5))! < Int($1.dropLast(5))! }
        let done = try json(try String(contentsOfFile: mnt + "/.snapfs/requests/" + XCTUnwrap(requests.last), encoding: .utf8))
        XCTAssertEqual(done["state"] as? String, "complete", "\(done)")
        XCTAssertEqual(done["format"] as? String, "intent rescale")
        let savepoint = try XCTUnwrap(done["snapshot"] as? String)
        XCTAssertTrue(FileManager.default.fileExists(atPath: mnt + "/" + savepoint), "the savepoint is a snapshot of the mount")
        let status = try json(try String(contentsOfFile: dir + "/status", encoding: .utf8))
        let last = try XCTUnwrap(status["lastIntent"] as? [String: Any])
        XCTAssertEqual(last["outcome"] as? String, "succeeded")
        XCTAssertEqual(last["newJob"] as? String, run.job)

        // A savepoint Flink fails: EIO, the reason in requests/, the job still running.
        let dir2 = mnt + "/.snapfs/jobs/\(second)"
        manager.faults.withLock { $0.savepointFails = "org.apache.flink.runtime.checkpoint.CheckpointException: Task local checkpoint failure." }
        let failed = try sh("echo 3 > \(dir2)/parallelism")
        XCTAssertNotEqual(failed.status, 0)
        XCTAssertTrue(failed.err.contains("Input/output error"), failed.err)
        let failedRequests = try FileManager.default.contentsOfDirectory(atPath: mnt + "/.snapfs/requests").sorted { Int($0.dropLast(5))! < Int($1.dropLast(5))! }
        let failure = try json(try String(contentsOfFile: mnt + "/.snapfs/requests/" + XCTUnwrap(failedRequests.last), encoding: .utf8))
        XCTAssertEqual(failure["state"] as? String, "failed")
        let why = failure["error"] as? String ?? ""
        XCTAssertTrue(why.contains("stop with a NATIVE savepoint") && why.contains("Task local checkpoint failure") && why.contains("still RUNNING"), why)
        XCTAssertEqual(cluster.jobs.withLock { $0[second]?.state }, "RUNNING")
        XCTAssertEqual(try String(contentsOfFile: dir2 + "/parallelism", encoding: .utf8), "1\n")

        // Arguments a control file cannot take: EINVAL. stop, then restart from its savepoint, through the files.
        let bad = try sh("echo --bogus 1 > \(dir2)/restart")
        XCTAssertNotEqual(bad.status, 0)
        XCTAssertTrue(bad.err.contains("Invalid argument"), bad.err)
        XCTAssertEqual(try sh("echo native > \(dir2)/stop").status, 0)
        XCTAssertEqual(cluster.jobs.withLock { $0[second]?.state }, "FINISHED")
        let stopped = try XCTUnwrap(try json(try String(contentsOfFile: dir2 + "/status", encoding: .utf8))["lastIntent"] as? [String: Any])
        let stopSavepoint = try XCTUnwrap(stopped["snapshot"] as? String)
        let restarted = try sh("echo --from \(stopSavepoint) --parallelism 2 > \(dir2)/restart")
        XCTAssertEqual(restarted.status, 0, restarted.err)
        let back = try XCTUnwrap(manager.runs.withLock { $0.last })
        XCTAssertEqual(back.parallelism, 2)
        XCTAssertTrue(back.savepointPath?.contains("/savepoints/savepoint-\(second.prefix(6))") ?? false, "\(back)")

        // REST: the same rescale on the job the first rescale started (it inherited the jar).
        let invalid = try curl("POST", daemon.base + "/v1/jobs/\(run.job)/rescale", json: #"{"parallelism":0}"#)
        XCTAssertEqual(invalid.status, 400, invalid.body)
        let viaREST = try curl("POST", daemon.base + "/v1/jobs/\(run.job)/rescale", json: #"{"parallelism":4}"#)
        XCTAssertEqual(viaREST.status, 200, viaREST.body)
        XCTAssertEqual(viaREST.object["parallelism"] as? Int, 4)
        XCTAssertEqual(viaREST.object["method"] as? String, "savepoint")
        XCTAssertEqual(manager.parallelism.withLock { $0[viaREST.object["newJob"] as? String ?? "-"] }, 4)
        let refused = try curl("POST", daemon.base + "/v1/jobs/\(second)/stop", json: #"{"format":"native"}"#)
        XCTAssertEqual(refused.status, 502, "Flink refuses to stop a finished job: \(refused.body)")
        XCTAssertTrue((refused.object["error"] as? String ?? "").contains("stop with a NATIVE savepoint"), refused.body)

        // The command line, beside the daemon, on the job REST started: --json is the same record.
        let restJob = try XCTUnwrap(viaREST.object["newJob"] as? String)
        let cli = try snapfs("job", "rescale", store, restJob, "1", "--json")
        XCTAssertEqual(cli.status, 0, cli.err)
        let cliRecord = try json(cli.out)
        XCTAssertEqual(cliRecord["parallelism"] as? Int, 1)
        XCTAssertEqual(cliRecord["outcome"] as? String, "succeeded")
        let cliStatus = try snapfs("job", "status", store, restJob)
        XCTAssertTrue(cliStatus.out.contains("last intent:     rescale 1: succeeded"), cliStatus.out)

        // The counts moved.
        let after = try curl("GET", daemon.base + "/metrics").body
        XCTAssertEqual(metric(after, #"snapfs_intents_total{intent="rescale",outcome="succeeded"}"#), 2)
        XCTAssertEqual(metric(after, #"snapfs_intents_total{intent="rescale",outcome="failed"}"#), 1)
        XCTAssertGreaterThan(metric(after, #"snapfs_snapshots_taken_total{source="intent"}"#) ?? 0,
                             metric(before, #"snapfs_snapshots_taken_total{source="intent"}"#) ?? 0)
        XCTAssertTrue(after.contains("snapfs_flink_rest_seconds"), "REST latency to Flink is measured")
    }
}
