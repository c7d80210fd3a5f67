import Foundation
import XCTest

/// The REST API of `snapfs serve`, driven with real HTTP requests on a loopback port: the same operations as the
/// command line, the same refusals (as JSON with the errno the mount reports), and the counters at /metrics moving.
final class RESTTests: XCTestCase {
    func testSnapshotLifecycleMatchesTheCommandLine() throws {
        let scratch = try Scratch()
        let store = try scratch.localStore()
        let server = try ServedStore([store, "--listen", "127.0.0.1:0"])
        defer { server.stop() }
        XCTAssertTrue(server.base.hasPrefix("http://127.0.0.1:"), server.base)

        let health = try curl("GET", server.base + "/healthz")
        XCTAssertEqual(health.status, 200, health.body)
        XCTAssertEqual(health.object["status"] as? String, "ok")
        XCTAssertEqual(health.object["engine"] as? String, "local")
        let before = try curl("GET", server.base + "/metrics").body
        XCTAssertEqual(metric(before, #"snapfs_snapshots_taken_total{source="rest"}"#), 0, before)

        let taken = try curl("POST", server.base + "/v1/snapshots", json: #"{"label":"first","format":"canonical"}"#)
        XCTAssertEqual(taken.status, 201, taken.body)
        XCTAssertEqual(taken.object["name"] as? String, "first")
        XCTAssertEqual(taken.object["format"] as? String, "canonical")
        XCTAssertEqual(taken.object["files"] as? Int, 2)
        let second = try curl("POST", server.base + "/v1/snapshots")
        XCTAssertEqual(second.status, 201, second.body)
        let secondName = try XCTUnwrap(second.object["name"] as? String)

        // The list is the command line's list, field for field.
        let listed = try curl("GET", server.base + "/v1/snapshots")
        XCTAssertEqual(listed.status, 200, listed.body)
        let rows = try XCTUnwrap(listed.json as? [[String: Any]])
        XCTAssertEqual(rows.compactMap { $0["name"] as? String }, ["first", secondName])
        let cli = try snapfs("list", store, "--json")
        let cliRows = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(cli.out.utf8)) as? [[String: Any]])
        XCTAssertEqual(rows.map { NSDictionary(dictionary: $0) }, cliRows.map { NSDictionary(dictionary: $0) })

        let shown = try curl("GET", server.base + "/v1/snapshots/first")
        XCTAssertEqual(shown.status, 200, shown.body)
        XCTAssertEqual(shown.object["name"] as? String, "first")
        XCTAssertEqual(shown.object["deletable"] as? Bool, true)
        XCTAssertEqual(shown.object["size"] as? Int, 100_006)
        let cliShow = try snapfs("show", store, "first", "--json")
        let cliShown = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(cliShow.out.utf8)) as? [String: Any])
        XCTAssertEqual(NSDictionary(dictionary: shown.object), NSDictionary(dictionary: cliShown))

        // Refusals: the store's message, the mount's errno, one status each.
        let again = try curl("POST", server.base + "/v1/snapshots", json: #"{"label":"first"}"#)
        XCTAssertEqual(again.status, 409, again.body)
        XCTAssertEqual(again.object["errno"] as? String, "EEXIST")
        XCTAssertEqual(again.object["error"] as? String, "a snapshot named 'first' already exists")
        let badLabel = try curl("POST", server.base + "/v1/snapshots", json: #"{"label":".hidden"}"#)
        XCTAssertEqual(badLabel.status, 400, badLabel.body)
        XCTAssertEqual(badLabel.object["errno"] as? String, "EINVAL")
        let badFormat = try curl("POST", server.base + "/v1/snapshots", json: #"{"format":"zip"}"#)
        XCTAssertEqual(badFormat.status, 400, badFormat.body)
        XCTAssertEqual(badFormat.object["errno"] as? String, "EINVAL")
        let nullLabel = try curl("POST", server.base + "/v1/snapshots", json: #"{"label":null}"#)
        XCTAssertEqual(nullLabel.status, 400, nullLabel.body)
        XCTAssertTrue((nullLabel.object["error"] as? String ?? "").contains("'label' must not be null"), nullLabel.body)
        let notJSON = try curl("POST", server.base + "/v1/snapshots", json: "{")
        XCTAssertEqual(notJSON.status, 400, notJSON.body)
        let missing = try curl("GET", server.base + "/v1/snapshots/nope")
        XCTAssertEqual(missing.status, 404, missing.body)
        XCTAssertEqual(missing.object["errno"] as? String, "ENOENT")
        XCTAssertEqual(missing.object["error"] as? String, "no snapshot named 'nope'")

        // Verify answers what `snapfs verify --json` reports.
        let verified = try curl("POST", server.base + "/v1/verify")
        XCTAssertEqual(verified.status, 200, verified.body)
        XCTAssertEqual(verified.object["clean"] as? Bool, true, verified.body)
        XCTAssertEqual(verified.object["snapshots"] as? Int, 2)
        let cliVerify = try snapfs("verify", store, "--json")
        let cliReport = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(cliVerify.out.utf8)) as? [String: Any])
        let report = try XCTUnwrap(verified.object["report"] as? [String: Any])
        XCTAssertEqual(NSDictionary(dictionary: report), NSDictionary(dictionary: cliReport))
        XCTAssertGreaterThan(report["objectsChecked"] as? Int ?? 0, 0)

        // The newest snapshot is the local job's recovery point: refused, 409 and EBUSY, as the CLI exits 5.
        let busy = try curl("DELETE", server.base + "/v1/snapshots/" + secondName)
        XCTAssertEqual(busy.status, 409, busy.body)
        XCTAssertEqual(busy.object["errno"] as? String, "EBUSY")
        XCTAssertTrue((busy.object["error"] as? String ?? "").contains("recovery point"), busy.body)
        XCTAssertEqual(try snapfs("delete", store, secondName).status, 5)

        // The older one goes, freeing what `show` said only it held.
        let exclusive = try XCTUnwrap(shown.object["exclusiveBytes"] as? Int)
        let deleted = try curl("DELETE", server.base + "/v1/snapshots/first")
        XCTAssertEqual(deleted.status, 200, deleted.body)
        XCTAssertEqual(deleted.object["snapshot"] as? String, "first")
        XCTAssertEqual(deleted.object["removedBytes"] as? Int, exclusive, deleted.body)
        XCTAssertEqual(try curl("GET", server.base + "/v1/snapshots/first").status, 404)
        let remaining = try JSONSerialization.jsonObject(with: Data(try snapfs("list", store, "--json").out.utf8)) as? [[String: Any]]
        XCTAssertEqual(remaining?.compactMap { $0["name"] as? String }, [secondName])

        let after = try curl("GET", server.base + "/metrics").body
        XCTAssertEqual(metric(after, #"snapfs_snapshots_taken_total{source="rest"}"#), 2, after)
        XCTAssertEqual(metric(after, #"snapfs_snapshots_deleted_total{reason="user"}"#), 1, after)
        XCTAssertEqual(metric(after, "snapfs_bytes_freed_total"), Double(exclusive), after)
        XCTAssertEqual(metric(after, #"snapfs_refusals_total{errno="EEXIST"}"#), 1, after)
        XCTAssertEqual(metric(after, #"snapfs_refusals_total{errno="ENOENT"}"#), 2, after)
        XCTAssertEqual(metric(after, #"snapfs_refusals_total{errno="EBUSY"}"#), 1, after)
        XCTAssertEqual(metric(after, #"snapfs_api_requests_total{method="DELETE",path="/v1/snapshots/{name}",status="200"}"#), 1, after)
        XCTAssertEqual(metric(after, #"snapfs_api_requests_total{method="DELETE",path="/v1/snapshots/{name}",status="409"}"#), 1, after)

        let noJobs = try curl("GET", server.base + "/v1/jobs/abc")
        XCTAssertEqual(noJobs.status, 403, noJobs.body)
        XCTAssertEqual(noJobs.object["errno"] as? String, "EPERM")

        let document = try curl("GET", server.base + "/openapi.yaml")
        XCTAssertEqual(document.status, 200)
        XCTAssertTrue(document.body.contains("operationId: triggerSnapshot"), document.body)
    }

    /// A Flink store whose JobManager does not answer: every job's newest checkpoint is its recovery point, and the
    /// REST delete refuses it with 409 and EBUSY, as the CLI exits 5 and the mount says EBUSY.
    func testRecoveryPointRefusedWith409() throws {
        let fixtures = ProcessInfo.processInfo.environment["SNAPFS_FLINK_FIXTURES"] ?? "/work/shared/fixtures/flink-2.3"
        let scratch = try Scratch()
        let store = scratch.path("store")
        try FileManager.default.copyItem(atPath: fixtures + "/store-2", toPath: store)
        let created = try snapfs("init", store, "--engine", "flink", "--path-map", "file:/srv/flink-store=\(store)",
                                 "--rest", "http://127.0.0.1:9", "--job", "e91e7d6dd164333d641e1dc4652079b3")
        XCTAssertEqual(created.status, 0, created.err)
        let server = try ServedStore([store, "--listen", "127.0.0.1:0"])
        defer { server.stop() }

        let refused = try curl("DELETE", server.base + "/v1/snapshots/e91e7d-chk-17")
        XCTAssertEqual(refused.status, 409, refused.body)
        XCTAssertEqual(refused.object["errno"] as? String, "EBUSY")
        XCTAssertTrue((refused.object["error"] as? String ?? "").contains("recovery point"), refused.body)
        XCTAssertEqual(try curl("GET", server.base + "/v1/snapshots/e91e7d-chk-17").status, 200, "still there")

        let verified = try curl("POST", server.base + "/v1/verify")
        XCTAssertEqual(verified.status, 200, verified.body)
        XCTAssertEqual(verified.object["clean"] as? Bool, false)
        let report = try XCTUnwrap(verified.object["report"] as? [String: Any])
        XCTAssertEqual(Set(report["notRestorable"] as? [String] ?? []), ["921f15-chk-11", "921f15-chk-12", "savepoint-921f15-e02738e55fb2"])

        let status = try curl("GET", server.base + "/v1/status")
        XCTAssertEqual(status.status, 200, status.body)
        XCTAssertEqual((status.object["jobs"] as? [Any])?.count, 5, status.body)

        let metrics = try curl("GET", server.base + "/metrics").body
        XCTAssertEqual(metric(metrics, #"snapfs_refusals_total{errno="EBUSY"}"#), 1, metrics)
        // The JobManager was asked (and did not answer): the calls are timed.
        XCTAssertTrue(metrics.contains(#"snapfs_flink_rest_seconds_count{method="GET",outcome="error"}"#), metrics)
    }
}

/// Who may reach the API: loopback unless asked otherwise, and with a token file only requests carrying it.
final class AccessTests: XCTestCase {
    func testTokenRequiredExceptForHealth() throws {
        let scratch = try Scratch()
        let store = try scratch.localStore()
        try Data("s3cret-token\n".utf8).write(to: URL(fileURLWithPath: scratch.path("token")))
        let server = try ServedStore([store, "--listen", "127.0.0.1:0", "--token-file", scratch.path("token")])
        defer { server.stop() }

        XCTAssertEqual(try curl("GET", server.base + "/healthz").status, 200)
        for (method, path) in [("GET", "/v1/snapshots"), ("POST", "/v1/snapshots"), ("DELETE", "/v1/snapshots/x"), ("GET", "/metrics"),
                               ("POST", "/v1/verify"), ("GET", "/openapi.yaml")] {
            let none = try curl(method, server.base + path)
            XCTAssertEqual(none.status, 401, "\(method) \(path): \(none.body)")
            XCTAssertEqual(none.object["errno"] as? String, "EACCES")
            let wrong = try curl(method, server.base + path, headers: ["Authorization: Bearer s3cret-tokem"])
            XCTAssertEqual(wrong.status, 401, "\(method) \(path): \(wrong.body)")
        }
        XCTAssertEqual(try snapfs("list", store, "--json").out.trimmingCharacters(in: .whitespacesAndNewlines), "[\n\n]", "nothing was taken")
        let ok = try curl("GET", server.base + "/v1/snapshots", headers: ["Authorization: Bearer s3cret-token"])
        XCTAssertEqual(ok.status, 200, ok.body)
        let taken = try curl("POST", server.base + "/v1/snapshots", json: #"{"label":"with-token"}"#, headers: ["Authorization: Bearer s3cret-token"])
        XCTAssertEqual(taken.status, 201, taken.body)

        let empty = scratch.path("empty")
        try Data("\n".utf8).write(to: URL(fileURLWithPath: empty))
        let refused = try snapfs("serve", store, "--listen", "127.0.0.1:0", "--token-file", empty)
        XCTAssertEqual(refused.status, 2)
        XCTAssertTrue(refused.err.contains("is empty"), refused.err)
    }

    func testLoopbackOnlyUnlessAllowed() throws {
        let scratch = try Scratch()
        let store = try scratch.localStore()
        for address in ["0.0.0.0:0", "[::]:0", "192.0.2.1:8080", "example.com:80"] {
            let r = try snapfs("serve", store, "--listen", address)
            XCTAssertEqual(r.status, 2, address)
            XCTAssertTrue(r.err.contains("not a loopback address") && r.err.contains("--allow-remote"), r.err)
        }
        for bad in ["127.0.0.1", "127.0.0.1:99999", ":80", "[::1:80"] {
            let r = try snapfs("serve", store, "--listen", bad)
            XCTAssertEqual(r.status, 2, bad)
            XCTAssertTrue(r.err.contains("HOST:PORT"), r.err)
        }
        let mountWithoutListen = try snapfs("serve", store, "--token-file", "/dev/null")
        XCTAssertEqual(mountWithoutListen.status, 2)

        // Loopback in any spelling serves; the daemon says where.
        let v6 = try ServedStore([store, "--listen", "[::1]:0"])
        XCTAssertTrue(v6.base.hasPrefix("http://[::1]:"), v6.base)
        XCTAssertEqual(try curl("GET", v6.base + "/healthz").status, 200)
        v6.stop()
        // With --allow-remote the wildcard address is accepted and answers on loopback too.
        let remote = try ServedStore([store, "--listen", "0.0.0.0:0", "--allow-remote"])
        defer { remote.stop() }
        let port = try XCTUnwrap(remote.base.split(separator: ":").last)
        XCTAssertEqual(try curl("GET", "http://127.0.0.1:\(port)/healthz").status, 200)
    }
}

/// `snapfs mount … --listen`: the REST API beside a real mount, over the same store and in the same process, so a
/// snapshot made with `mkdir` in the mount is listed and deleted over REST, and the mount sees the delete.
final class MountWithRESTTests: XCTestCase {
    func testMountAndRESTServeTheSameStore() throws {
        guard FileManager.default.isExecutableFile(atPath: "/bin/fusermount3"), FileManager.default.fileExists(atPath: "/dev/fuse") else {
            if ProcessInfo.processInfo.environment["SNAPFS_SKIP_MOUNT_TESTS"] != nil { throw XCTSkip("mount tests skipped") }
            return XCTFail("this test mounts for real: it needs /dev/fuse and fusermount3 (Scripts/install-deps)")
        }
        let scratch = try Scratch()
        let store = try scratch.localStore()
        let mnt = scratch.path("mnt")
        try FileManager.default.createDirectory(atPath: mnt, withIntermediateDirectories: true)
        let daemon = try ServedStore([store, mnt, "--listen", "127.0.0.1:0"], command: "mount")
        defer {
            _ = try? Process.run(URL(fileURLWithPath: "/bin/fusermount3"), arguments: ["-u", mnt]).waitUntilExit()
            daemon.stop()
        }
        // The mount answers once FUSE is up; the REST line comes first.
        var mounted = false
        for _ in 0..<100 where !mounted {
            mounted = FileManager.default.fileExists(atPath: mnt + "/.snapfs/status")
            if !mounted { Thread.sleep(forTimeInterval: 0.1) }
        }
        XCTAssertTrue(mounted, "the mount did not come up")

        try FileManager.default.createDirectory(atPath: mnt + "/from-mkdir", withIntermediateDirectories: false)
        try FileManager.default.createDirectory(atPath: mnt + "/newer", withIntermediateDirectories: false)
        let listed = try curl("GET", daemon.base + "/v1/snapshots")
        XCTAssertEqual((listed.json as? [[String: Any]])?.compactMap { $0["name"] as? String }, ["from-mkdir", "newer"], listed.body)
        let deleted = try curl("DELETE", daemon.base + "/v1/snapshots/from-mkdir")
        XCTAssertEqual(deleted.status, 200, deleted.body)
        // The mount learns of a delete made beside it (REST, as the command line) at its next look at the catalog.
        var gone = false
        for _ in 0..<100 where !gone {
            gone = !FileManager.default.fileExists(atPath: mnt + "/from-mkdir")
            if !gone { Thread.sleep(forTimeInterval: 0.1) }
        }
        XCTAssertTrue(gone, "the mount sees the REST delete")
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: mnt + "/newer").sorted(), ["a.txt", "sub"])
        let metrics = try curl("GET", daemon.base + "/metrics").body
        XCTAssertEqual(metric(metrics, #"snapfs_snapshots_taken_total{source="mount"}"#), 2, metrics)
        XCTAssertEqual(metric(metrics, #"snapfs_snapshots_deleted_total{reason="user"}"#), 1, metrics)
        XCTAssertEqual(metric(metrics, #"snapfs_refusals_total{errno="EROFS"}"#), 0, metrics)

        // Refusals through the mount are counted as the REST API's are: a write into a snapshot (EROFS) and an
        // `rm -rf` of the local job's recovery point (EBUSY).
        XCTAssertNotEqual(try runProgram("/usr/bin/touch", [mnt + "/newer/new-file"]), 0, "a write into a snapshot is refused")
        XCTAssertNotEqual(try runProgram("/bin/rm", ["-rf", mnt + "/newer"]), 0, "the recovery point stays")
        XCTAssertTrue(FileManager.default.fileExists(atPath: mnt + "/newer/a.txt"))
        let refused = try curl("GET", daemon.base + "/metrics").body
        XCTAssertGreaterThanOrEqual(metric(refused, #"snapfs_refusals_total{errno="EROFS"}"#) ?? 0, 1, refused)
        XCTAssertGreaterThanOrEqual(metric(refused, #"snapfs_refusals_total{errno="EBUSY"}"#) ?? 0, 1, refused)
    }
}
