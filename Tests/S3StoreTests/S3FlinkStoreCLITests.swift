import BuiltTools
import FlinkFixtures
import Foundation
import S3Client
import S3TestSupport
import XCTest

/// Flink stores on real S3 servers (Ceph RGW and SeaweedFS, each test once per server), driven through the built
/// `snapfs` as a user would: both fixture stores uploaded with their paths mapped, `init s3://…`, `list`,
/// `verify`, `delete`, `gc`, `refresh`, the owner lock, and a `snapfs` killed with SIGKILL while a delete or a
/// refresh waits on a server that was killed too.
final class S3FlinkStoreCLITests: XCTestCase {
    static let servers = S3TestServers()

    override class func setUp() {
        super.setUp()
        servers.startAll()
    }

    override class func tearDown() {
        servers.stopAll()
        super.tearDown()
    }

    struct Run {
        var status: Int32
        var out: String
        var err: String
    }

    /// A scratch directory of one test, removed after it.
    var scratch: URL!

    override func setUp() {
        super.setUp()
        scratch = URL(fileURLWithPath: "/tmp/s3-store-tests-\(UUID().uuidString.prefix(8))")
        try? FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
    }

    override func tearDown() {
        try? FileManager.default.removeItem(at: scratch)
        super.tearDown()
    }

    /// `snapfs ARGS` with the server's credentials in the environment (never in the arguments).
    func snapfs(_ args: [String], server: S3TestServer, environment extra: [String: String] = [:]) throws -> Run {
        let p = try start(args, server: server, environment: extra)
        let out = p.out.fileHandleForReading.readDataToEndOfFile()
        let err = p.err.fileHandleForReading.readDataToEndOfFile()
        p.process.waitUntilExit()
        return Run(status: p.process.terminationStatus, out: String(decoding: out, as: UTF8.self), err: String(decoding: err, as: UTF8.self))
    }

    func start(_ args: [String], server: S3TestServer, environment extra: [String: String] = [:]) throws -> (process: Process, out: Pipe, err: Pipe) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: BuiltTools.snapfs)
        p.arguments = args
        var env = ProcessInfo.processInfo.environment
        env["AWS_ACCESS_KEY_ID"] = S3TestServer.accessKey
        env["AWS_SECRET_ACCESS_KEY"] = S3TestServer.secretKey
        env["SNAPFS_LOG"] = env["SNAPFS_LOG"] ?? "error"
        for (k, v) in extra { env[k] = v }
        p.environment = env
        let out = Pipe(), err = Pipe()
        p.standardOutput = out
        p.standardError = err
        try p.run()
        return (p, out, err)
    }

    @discardableResult
    func ok(_ args: [String], server: S3TestServer, file: StaticString = #filePath, line: UInt = #line) throws -> String {
        let r = try snapfs(args, server: server)
        XCTAssertEqual(r.status, 0, "\(server.kind): snapfs \(args.joined(separator: " ")): \(r.err)", file: file, line: line)
        return r.out
    }

    func json(_ text: String) throws -> Any { try JSONSerialization.jsonObject(with: Data(text.utf8)) }

    /// name → restorable, from `verify --json`.
    func verify(_ store: String, server: S3TestServer) throws -> (restorable: [String: Bool], report: [String: Any]) {
        let r = try snapfs(["verify", store, "--json"], server: server)
        XCTAssertTrue(r.status == 0 || r.status == 10, "\(server.kind): verify: \(r.err)")
        let report = try XCTUnwrap(try json(r.out) as? [String: Any])
        let snapshots = try XCTUnwrap(report["snapshots"] as? [[String: Any]])
        var out: [String: Bool] = [:]
        for s in snapshots { out[s["name"] as! String] = s["restorable"] as? Bool }
        return (out, report)
    }

    /// Runs `body` once per server with a client and a fresh bucket.
    func onEachServer(_ test: String = #function, _ body: (S3TestServer, S3Client, String) async throws -> Void) async throws {
        if S3TestServers.skipRequested { throw XCTSkip("SNAPFS_SKIP_S3_TESTS=1") }
        let running: [S3TestServer]
        do { running = try Self.servers.servers() } catch { XCTFail("\(error)"); return }
        for server in running {
            let client = S3Client(endpoint: server.endpoint, credentials: server.credentials,
                                  retry: S3RetryPolicy(maxAttempts: 3, baseDelay: .milliseconds(50)))
            let bucket = String(test.lowercased().filter { $0.isLetter || $0.isNumber }.prefix(40)) + "-\(server.kind.rawValue)"
            do {
                try await client.createBucket(bucket)
                try await body(server, client, bucket)
            } catch {
                XCTFail("\(server.kind): \(error)")
            }
            try await client.shutdown()
        }
    }

    /// Uploads a fixture store (with the 0-byte `…/` markers S3A leaves) under `location`; store-relative paths.
    @discardableResult
    func upload(store: Int, to location: S3Location, with s3: S3Client) async throws -> Set<String> {
        let root = FlinkFixtures.directory.appendingPathComponent("store-\(store)")
        var out = Set<String>()
        let walker = try XCTUnwrap(FileManager.default.enumerator(atPath: root.path))
        while let relative = walker.nextObject() as? String {
            var isDirectory: ObjCBool = false
            _ = FileManager.default.fileExists(atPath: root.appendingPathComponent(relative).path, isDirectory: &isDirectory)
            if isDirectory.boolValue {
                let name = (relative as NSString).lastPathComponent
                if name == "shared" || name == "taskowned" { try await s3.put(bucket: location.bucket, key: location.key(relative + "/"), data: Data()) }
                continue
            }
            try await s3.put(bucket: location.bucket, key: location.key(relative), data: try Data(contentsOf: root.appendingPathComponent(relative)))
            out.insert(relative)
        }
        return out
    }

    /// The same fixture store verified from a local copy: the truth an S3 store must equal.
    func localTruth(store: Int, server: S3TestServer) throws -> (list: [String], restorable: [String: Bool]) {
        let copy = scratch.appendingPathComponent("local-\(store)")
        try? FileManager.default.removeItem(at: copy)
        try FileManager.default.copyItem(at: FlinkFixtures.directory.appendingPathComponent("store-\(store)"), to: copy)
        try ok(["init", copy.path, "--engine", "flink", "--path-map", "\(FlinkFixtures.writtenAt)=\(copy.path)"], server: server)
        let list = try XCTUnwrap(try json(try ok(["list", copy.path, "--json"], server: server)) as? [[String: Any]]).map { $0["name"] as! String }
        return (list.sorted(), try verify(copy.path, server: server).restorable)
    }

    /// `init s3://…` with the fixtures' paths mapped onto the bucket, as `s3://` or (`mapScheme`) `s3a://` URIs.
    func initS3(_ location: S3Location, server: S3TestServer, catalog: URL, endpoint: String? = nil, mapScheme: String = "s3",
                extra: [String] = []) throws -> Run {
        try snapfs(["init", location.description, "--engine", "flink", "--endpoint", endpoint ?? server.endpoint.url.absoluteString, "--path-style",
                    "--region", S3TestServer.region, "--cache", catalog.path, "--path-map", "\(FlinkFixtures.writtenAt)=\(mapScheme)\(location.description.dropFirst(2))"] + extra,
                   server: server)
    }

    // MARK: - Tests

    /// `init s3://…` then `list` and `verify` equal the same store verified on local disk, for both fixture stores:
    /// store 1 holds 13 restorable snapshots and 1 that is not, store 2 13 and 3 (CLAIM restores removed files).
    func testInitListVerifyEqualTheLocalStore() async throws {
        try await onEachServer { server, s3, bucket in
            for (store, counts) in [(1, (13, 1)), (2, (13, 3))] {
                let truth = try localTruth(store: store, server: server)
                let location = try S3Location(bucket: bucket, prefix: "flink/store-\(store)")
                try await upload(store: store, to: location, with: s3)
                let catalog = scratch.appendingPathComponent("s3-\(server.kind.rawValue)-\(store)")
                // Store 2's paths are mapped onto `s3a://` URIs (as Flink's S3A client writes them), store 1's onto `s3://`.
                let created = try initS3(location, server: server, catalog: catalog, mapScheme: store == 2 ? "s3a" : "s3")
                XCTAssertEqual(created.status, 0, "\(server.kind): \(created.err)")
                XCTAssertFalse(created.out.contains(S3TestServer.secretKey), "no credential is printed")
                let list = try XCTUnwrap(try json(try ok(["list", catalog.path, "--json"], server: server)) as? [[String: Any]]).map { $0["name"] as! String }
                XCTAssertEqual(list.sorted(), truth.list, "\(server.kind) store-\(store): list")
                let (restorable, report) = try verify(catalog.path, server: server)
                XCTAssertEqual(restorable, truth.restorable, "\(server.kind) store-\(store): verify")
                XCTAssertEqual(restorable.values.filter { $0 }.count, counts.0, "\(server.kind) store-\(store): restorable")
                XCTAssertEqual(restorable.values.filter { !$0 }.count, counts.1, "\(server.kind) store-\(store): not restorable")
                XCTAssertEqual((report["unreferenced"] as? [String])?.count, 0, "\(server.kind) store-\(store): unreferenced")
                // The catalog holds no credential.
                let catalogBytes = try Data(contentsOf: catalog.appendingPathComponent("catalog.sqlite"))
                XCTAssertNil(catalogBytes.range(of: Data(S3TestServer.secretKey.utf8)), "\(server.kind): the secret is not in the catalog")
                XCTAssertNil(catalogBytes.range(of: Data(S3TestServer.accessKey.utf8)), "\(server.kind): the key id is not in the catalog")
            }
        }
    }

    /// Deleting a snapshot removes the files only it needed (DeleteObjects through the journal) and keeps every
    /// other snapshot as restorable as it was.
    func testDeleteKeepsEveryOtherSnapshotRestorable() async throws {
        try await onEachServer { server, s3, bucket in
            let location = try S3Location(bucket: bucket, prefix: "store-2")
            try await upload(store: 2, to: location, with: s3)
            let catalog = scratch.appendingPathComponent("s3-\(server.kind.rawValue)")
            XCTAssertEqual(try initS3(location, server: server, catalog: catalog).status, 0)
            let before = try verify(catalog.path, server: server).restorable
            var deletedOne = false
            for victim in before.keys.sorted() where before[victim] == true {
                let shown = try XCTUnwrap(try json(try ok(["show", catalog.path, victim, "--json"], server: server)) as? [String: Any])
                let r = try snapfs(["delete", catalog.path, victim], server: server)
                if r.status == 5 { continue }  // a recovery point: refused, as on a local store
                XCTAssertEqual(r.status, 0, "\(server.kind): delete \(victim): \(r.err)")
                let after = try verify(catalog.path, server: server)
                var expected = before
                expected[victim] = nil
                XCTAssertEqual(after.restorable, expected, "\(server.kind): after deleting \(victim)")
                XCTAssertEqual(after.report["pendingRemovals"] as? Int, 0, "\(server.kind): nothing left in the journal")
                // Its directory's `_metadata` is gone from the bucket.
                let directory = try XCTUnwrap(shown["directory"] as? String)
                let head = try await s3.head(bucket: bucket, key: location.key(directory + "/_metadata"))
                XCTAssertNil(head, "\(server.kind): \(directory)/_metadata removed")
                deletedOne = true
                break
            }
            XCTAssertTrue(deletedOne, "\(server.kind): some snapshot could be deleted")
        }
    }

    /// A delete's DeleteObjects batch is caught in flight (held by a proxy in front of the server) and the `snapfs`
    /// sending it is killed with SIGKILL; then another delete's batch is caught and the server is killed and
    /// started again under it. Each time the next command sends the journalled batch again: the deleted
    /// snapshots' files are gone, every other snapshot is as restorable as before, and the journal is empty.
    func testKillMidDeleteResumesOnTheNextCommand() async throws {
        try await onEachServer { server, s3, bucket in
            let proxy = try StallingProxy(target: server.port)
            defer { proxy.stop() }
            let location = try S3Location(bucket: bucket, prefix: "store-1")
            try await upload(store: 1, to: location, with: s3)
            let catalog = scratch.appendingPathComponent("s3-\(server.kind.rawValue)")
            XCTAssertEqual(try initS3(location, server: server, catalog: catalog, endpoint: "http://127.0.0.1:\(proxy.port)").status, 0)
            var expected = try verify(catalog.path, server: server).restorable

            for fault in ["snapfs killed", "server restarted"] {
                let victim = try XCTUnwrap(try deletable(catalog: catalog, among: expected, server: server), "\(server.kind): a deletable snapshot")
                let shown = try XCTUnwrap(try json(try ok(["show", catalog.path, victim, "--json"], server: server)) as? [String: Any])
                let directory = try XCTUnwrap(shown["directory"] as? String)
                let heldBefore = proxy.heldRequests
                proxy.hold(true)
                let p = try start(["delete", catalog.path, victim], server: server)
                let deadline = Date().addingTimeInterval(120)
                while Date() < deadline, proxy.heldRequests == heldBefore { usleep(20_000) }
                XCTAssertGreaterThan(proxy.heldRequests, heldBefore, "\(server.kind) \(fault): the batch was sent")
                XCTAssertGreaterThan(try pendingRemovals(catalog), 0, "\(server.kind) \(fault): the removals are journalled")
                if fault == "snapfs killed" {
                    kill(p.process.processIdentifier, SIGKILL)
                    p.process.waitUntilExit()
                    XCTAssertEqual(p.process.terminationReason, .uncaughtSignal)
                    proxy.hold(false)
                } else {
                    server.killGateway()
                    proxy.hold(false)
                    p.process.waitUntilExit()
                    try server.restartGateway()
                }
                let stillThere = try await s3.head(bucket: bucket, key: location.key(directory + "/_metadata"))
                XCTAssertNotNil(stillThere, "\(server.kind) \(fault): the batch never reached the server")
                XCTAssertGreaterThan(try pendingRemovals(catalog), 0, "\(server.kind) \(fault): still journalled")

                // The next command drains the journal.
                let after = try verify(catalog.path, server: server)
                expected[victim] = nil
                XCTAssertEqual(after.restorable, expected, "\(server.kind) \(fault): every other snapshot as before")
                XCTAssertEqual(after.report["pendingRemovals"] as? Int, 0, "\(server.kind) \(fault): the journal was drained")
                let gone = try await s3.head(bucket: bucket, key: location.key(directory + "/_metadata"))
                XCTAssertNil(gone, "\(server.kind) \(fault): the deleted snapshot's files are removed")
            }
        }
    }

    /// A refresh killed with SIGKILL while the server is down forgets nothing, and the next one (after a new
    /// checkpoint appears) records only the new one, with few listing requests.
    func testRefreshKilledForgetsNothingAndListsOnlyWhatIsNew() async throws {
        try await onEachServer { server, s3, bucket in
            let location = try S3Location(bucket: bucket, prefix: "store-1")
            try await upload(store: 1, to: location, with: s3)
            let catalog = scratch.appendingPathComponent("s3-\(server.kind.rawValue)")
            XCTAssertEqual(try initS3(location, server: server, catalog: catalog).status, 0)
            let names = try listNames(catalog, server: server)

            server.killGateway()
            let p = try start(["refresh", catalog.path, "--full"], server: server)
            usleep(1_500_000)
            kill(p.process.processIdentifier, SIGKILL)
            p.process.waitUntilExit()
            try server.restartGateway()
            XCTAssertEqual(try listNames(catalog, server: server), names, "\(server.kind): no snapshot forgotten")

            // A new checkpoint of a known job: its `_metadata` copied from the job's newest one.
            let job = "checkpoints/4b913385afc25f46a0551aee1c033ec6"
            let metadata = try await s3.get(bucket: bucket, key: location.key("\(job)/chk-5/_metadata"))
            try await s3.put(bucket: bucket, key: location.key("\(job)/chk-6/_metadata"), data: metadata)
            let refreshed = try XCTUnwrap(try json(try ok(["refresh", catalog.path, "--json"], server: server)) as? [String: Any])
            XCTAssertEqual((refreshed["added"] as? [String])?.count, 1, "\(server.kind): \(refreshed)")
            let remote = try XCTUnwrap(refreshed["remote"] as? [String: Any])
            XCTAssertEqual(remote["full"] as? Bool, false, "\(server.kind): an incremental pass")
            let cost = try XCTUnwrap(remote["cost"] as? [String: Any])
            let requests = try XCTUnwrap(cost["listRequests"] as? Int)
            // Per job directory two listings past its newest checkpoint, one per directory holding jobs or
            // savepoints: far fewer than a listing of the whole store would take at 1,000 keys a page.
            XCTAssertLessThanOrEqual(requests, 2 * 6 + 3, "\(server.kind): \(cost)")
            XCTAssertEqual(try listNames(catalog, server: server).count, names.count + 1)
            // A full pass finds it the same.
            let full = try XCTUnwrap(try json(try ok(["refresh", catalog.path, "--json", "--full"], server: server)) as? [String: Any])
            XCTAssertEqual((full["added"] as? [String])?.count, 0)
            XCTAssertEqual((full["forgotten"] as? [String])?.count, 0)
        }
    }

    /// A second catalog on the same bucket prefix is refused through the lock object; `--break-lock` takes the
    /// prefix over, and the first catalog is then refused when it would change anything. A wrong secret is refused
    /// by the server (403) and the command stops with a clear message.
    func testSecondCatalogOnOnePrefixIsRefused() async throws {
        try await onEachServer { server, s3, bucket in
            let location = try S3Location(bucket: bucket, prefix: "store-1")
            try await upload(store: 1, to: location, with: s3)
            let first = scratch.appendingPathComponent("first-\(server.kind.rawValue)")
            let second = scratch.appendingPathComponent("second-\(server.kind.rawValue)")
            XCTAssertEqual(try initS3(location, server: server, catalog: first).status, 0)
            // A wrong secret: the server's 403 stops the command at once with a clear message, not the secret.
            let denied = try snapfs(["list", first.path], server: server, environment: ["AWS_SECRET_ACCESS_KEY": "wrongSECRET0"])
            XCTAssertEqual(denied.status, 6, "\(server.kind): \(denied.err)")
            XCTAssertTrue(denied.err.contains("403") && denied.err.contains("AWS_ACCESS_KEY_ID"), denied.err)
            XCTAssertFalse(denied.err.contains("wrongSECRET0"), "the secret is never printed")
            let refused = try initS3(location, server: server, catalog: second)
            XCTAssertEqual(refused.status, 5, "\(server.kind): \(refused.err)")
            XCTAssertTrue(refused.err.contains("already managed by another SnapFS catalog"), refused.err)
            XCTAssertTrue(refused.err.contains(first.path), "names the catalog holding it: \(refused.err)")
            XCTAssertFalse(FileManager.default.fileExists(atPath: second.appendingPathComponent("catalog.sqlite").path), "nothing created")

            let taken = try initS3(location, server: server, catalog: second, extra: ["--break-lock"])
            XCTAssertEqual(taken.status, 0, "\(server.kind): \(taken.err)")
            let old = try snapfs(["refresh", first.path], server: server)
            XCTAssertEqual(old.status, 5, "\(server.kind): \(old.err)")
            XCTAssertTrue(old.err.contains(second.path), old.err)
            try ok(["list", second.path], server: server)
        }
    }

    /// `gc` removes what no snapshot needs (an orphan in `shared/`, the files of a `chk-N` that never got its
    /// `_metadata`) once old enough, and nothing else; `prune` deletes through the checked path and keeps every
    /// remaining snapshot as restorable as it was.
    func testGCAndPruneOnS3() async throws {
        try await onEachServer { server, s3, bucket in
            let location = try S3Location(bucket: bucket, prefix: "store-1")
            try await upload(store: 1, to: location, with: s3)
            let catalog = scratch.appendingPathComponent("s3-\(server.kind.rawValue)")
            XCTAssertEqual(try initS3(location, server: server, catalog: catalog).status, 0)
            let job = "checkpoints/4b913385afc25f46a0551aee1c033ec6"
            let orphans = ["\(job)/shared/orphan-sst", "\(job)/chk-99/aborted-state"]
            for o in orphans { try await s3.put(bucket: bucket, key: location.key(o), data: Data(repeating: 7, count: 1234)) }
            let before = try verify(catalog.path, server: server)
            XCTAssertEqual(Set(before.report["unreferenced"] as? [String] ?? []), Set(orphans), "\(server.kind)")

            let young = try XCTUnwrap(try json(try ok(["gc", catalog.path, "--json"], server: server)) as? [String: Any])
            XCTAssertEqual((young["removedFiles"] as? [String])?.count, 0, "\(server.kind): younger than the grace")
            let gc = try XCTUnwrap(try json(try ok(["gc", catalog.path, "--grace", "0", "--json"], server: server)) as? [String: Any])
            XCTAssertEqual(Set(gc["removedFiles"] as? [String] ?? []), Set(orphans), "\(server.kind)")
            for o in orphans {
                let gone = try await s3.head(bucket: bucket, key: location.key(o))
                XCTAssertNil(gone, "\(server.kind): \(o)")
            }
            let after = try verify(catalog.path, server: server)
            XCTAssertEqual(after.restorable, before.restorable, "\(server.kind): gc kept every snapshot")
            XCTAssertEqual((after.report["unreferenced"] as? [String])?.count, 0)

            let pruned = try snapfs(["prune", catalog.path, "--keep-last", "2"], server: server)
            XCTAssertEqual(pruned.status, 0, "\(server.kind): \(pruned.err)")
            let remaining = try verify(catalog.path, server: server)
            XCTAssertLessThan(remaining.restorable.count, before.restorable.count, "\(server.kind): prune deleted some")
            for (name, ok) in remaining.restorable { XCTAssertEqual(ok, before.restorable[name], "\(server.kind): \(name) after prune") }
            XCTAssertEqual(remaining.report["pendingRemovals"] as? Int, 0)
        }
    }

    /// A savepoint's move on S3: its files copied server-side (CopyObject) to the new directory, the old ones
    /// removed through the checked delete; it stays restorable under its new name, nothing else changes.
    func testSavepointMoveIsCopyAndCheckedDelete() async throws {
        try await onEachServer { server, s3, bucket in
            let location = try S3Location(bucket: bucket, prefix: "store-1")
            try await upload(store: 1, to: location, with: s3)
            let catalog = scratch.appendingPathComponent("s3-\(server.kind.rawValue)")
            XCTAssertEqual(try initS3(location, server: server, catalog: catalog).status, 0)
            let before = try verify(catalog.path, server: server).restorable
            let old = "savepoint-c4f302-a3c72ffbb47e"
            XCTAssertEqual(before[old], true)
            try ok(["move", catalog.path, old, "before-upgrade"], server: server)
            let after = try verify(catalog.path, server: server)
            var expected = before
            expected[old] = nil
            expected["before-upgrade"] = true
            XCTAssertEqual(after.restorable, expected, "\(server.kind)")
            XCTAssertEqual(after.report["pendingRemovals"] as? Int, 0)
            XCTAssertEqual((after.report["unreferenced"] as? [String])?.count, 0, "\(server.kind): no copy left behind")
            let moved = try await s3.head(bucket: bucket, key: location.key("savepoints/before-upgrade/_metadata"))
            XCTAssertNotNil(moved, "\(server.kind): copied")
            let listing = try await s3.list(bucket: bucket, prefix: location.key("savepoints/\(old)/"))
            XCTAssertEqual(listing.objects.count, 0, "\(server.kind): the old directory's files are removed")
        }
    }

    // MARK: - Helpers

    func listNames(_ catalog: URL, server: S3TestServer) throws -> [String] {
        try XCTUnwrap(try json(try ok(["list", catalog.path, "--json"], server: server)) as? [[String: Any]]).map { $0["name"] as! String }.sorted()
    }

    /// A snapshot a delete would not refuse, from a dry run.
    func deletable(catalog: URL, among: [String: Bool], server: S3TestServer) throws -> String? {
        for name in among.keys.sorted() where among[name] == true {
            let r = try snapfs(["delete", catalog.path, name, "--dry-run"], server: server)
            if r.status == 0 { return name }
        }
        return nil
    }

    func pendingRemovals(_ catalog: URL) throws -> Int {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/sqlite3")
        p.arguments = ["-readonly", catalog.appendingPathComponent("catalog.sqlite").path, "SELECT COUNT(*) FROM removals"]
        let out = Pipe()
        p.standardOutput = out
        p.standardError = FileHandle.nullDevice
        try p.run()
        let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        return Int(text.trimmingCharacters(in: .whitespacesAndNewlines)) ?? 0
    }
}
