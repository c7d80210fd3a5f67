@testable import FlinkEngine
import FlinkFixtures
import Foundation
import SnapStore
import XCTest

/// A pass with nothing new reads no `_metadata`, a pass after one new checkpoint reads exactly one, and a daemon
/// notices a new checkpoint through inotify or, when told to poll, by polling.
final class FlinkWatchTests: XCTestCase {
    private let layout = "forst"

    private func open() throws -> (URL, Store, FlinkEngine) {
        let root = try LayoutFixtures.copy(layout)
        addTeardownBlock { try? FileManager.default.removeItem(at: root) }
        let settings = FlinkStoreSettings(restURL: nil, jobID: nil, pathMap: [(from: LayoutFixtures.writtenAt(layout), to: root.path)])
        let store = try Store.create(at: root, engine: FlinkStoreSettings.engineName, settings: settings.metaRows, adopting: true,
                                     rules: [FlinkRules()])
        return (root, store, try FlinkEngine.forStore(store))
    }

    /// A new checkpoint the way Flink writes one: the directory first, its `_metadata` last (a copy of the job's
    /// newest checkpoint's, which names the same shared files).
    private func writeCheckpoint(_ root: URL) throws -> String {
        let jobs = root.appendingPathComponent("checkpoints")
        let job = try FileManager.default.contentsOfDirectory(atPath: jobs.path).sorted()[0]
        let jobDir = jobs.appendingPathComponent(job)
        let numbers = try FileManager.default.contentsOfDirectory(atPath: jobDir.path).compactMap { $0.hasPrefix("chk-") ? Int($0.dropFirst(4)) : nil }
        let newest = numbers.max()!
        let fresh = jobDir.appendingPathComponent("chk-\(newest + 100)")
        try FileManager.default.createDirectory(at: fresh, withIntermediateDirectories: false)
        let bytes = try Data(contentsOf: jobDir.appendingPathComponent("chk-\(newest)/_metadata"))
        try bytes.write(to: fresh.appendingPathComponent("_metadata.inprogress"))
        try FileManager.default.moveItem(at: fresh.appendingPathComponent("_metadata.inprogress"), to: fresh.appendingPathComponent("_metadata"))
        return "checkpoints/\(job)/chk-\(newest + 100)"
    }

    /// Polls `condition` every 50 ms for up to `seconds`: waits for a state, asserts no time.
    private func eventually(_ seconds: Double = 30, _ condition: () throws -> Bool) rethrows -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if try condition() { return true }
            Thread.sleep(forTimeInterval: 0.05)
        }
        return try condition()
    }

    func testRefreshReadsOnlyNewMetadata() throws {
        let (root, store, engine) = try open()
        let importer = engine.importer
        try importer.refresh()
        let known = try store.snapshots().count
        XCTAssertGreaterThan(known, 0)

        let before = importer.activity.metadataReads
        let again = try importer.refresh()
        XCTAssertEqual(again.added, [])
        XCTAssertEqual(again.unchanged, known)
        XCTAssertEqual(importer.activity.metadataReads, before, "a pass with nothing new reads no _metadata")

        // Once the directories are older than the timestamp granularity, a pass stops after its stat()s.
        XCTAssertTrue(try eventually {
            let quick = importer.activity.quickPasses
            let report = try importer.refresh()
            XCTAssertEqual(report.unchanged, known)
            return importer.activity.quickPasses > quick
        }, "a pass over an unchanged store takes the quick path")
        XCTAssertEqual(importer.activity.metadataReads, before, "quick passes read no _metadata")

        let directory = try writeCheckpoint(root)
        let reads = importer.activity.metadataReads
        let report = try importer.refresh()
        XCTAssertEqual(report.added.count, 1)
        XCTAssertEqual(importer.activity.metadataReads, reads + 1, "one new checkpoint, one _metadata read")
        XCTAssertEqual(try store.snapshots().filter { $0.directory == directory }.count, 1)

        // Removed (as Flink subsumes it): the quick path must not hide it.
        try FileManager.default.removeItem(at: root.appendingPathComponent(directory))
        let gone = try importer.refresh()
        XCTAssertEqual(gone.forgotten.count, 1)
        XCTAssertEqual(try store.snapshots().filter { $0.directory == directory }.count, 0)
    }

    func testNewCheckpointIsImportedThroughInotify() throws {
        let (root, store, engine) = try open()
        // The periodic pass runs once at start and then not for an hour: only an event can import the checkpoint.
        let watcher = FlinkStoreWatcher(engine: engine, interval: 3600, safetyInterval: 3600, mode: .automatic)
        watcher.start()
        defer { watcher.stop() }
        XCTAssertTrue(watcher.usesInotify, "a local file system has inotify")
        XCTAssertTrue(eventually { watcher.importer.activity.fullPasses >= 1 && !watcher.importer.scanCache.watchedDirectories.isEmpty })
        let known = try store.snapshots().count
        let directory = try writeCheckpoint(root)
        XCTAssertTrue(try eventually { try store.snapshots().contains { $0.directory == directory } }, "imported after the event")
        XCTAssertEqual(try store.snapshots().count, known + 1)
    }

    func testPollingStillImportsWhenInotifyIsOff() throws {
        let (root, store, engine) = try open()
        let watcher = FlinkStoreWatcher(engine: engine, interval: 0.2, mode: .polling)
        watcher.start()
        defer { watcher.stop() }
        XCTAssertFalse(watcher.usesInotify)
        XCTAssertTrue(eventually { watcher.importer.activity.fullPasses >= 1 })
        let directory = try writeCheckpoint(root)
        XCTAssertTrue(try eventually { try store.snapshots().contains { $0.directory == directory } }, "imported by a periodic pass")
    }

    func testPollingIsForcedByTheEnvironment() {
        setenv("SNAPFS_FLINK_WATCH", "poll", 1)
        defer { unsetenv("SNAPFS_FLINK_WATCH") }
        XCTAssertEqual(FlinkStoreWatcher.Mode.fromEnvironment, .polling)
        setenv("SNAPFS_FLINK_WATCH", "auto", 1)
        XCTAssertEqual(FlinkStoreWatcher.Mode.fromEnvironment, .automatic)
    }

    /// A store on a network or FUSE file system is polled: inotify sees no change another machine makes there.
    func testNetworkAndFUSEFileSystemsArePolled() {
        let mounts = """
            /dev/sda1 / ext4 rw 0 0
            server:/export /srv/nfs nfs4 rw 0 0
            //host/share /srv/smb cifs rw 0 0
            s3fs /srv/s3 fuse.s3fs rw 0 0
            tmpfs /srv/nfs/local tmpfs rw 0 0
            """
        XCTAssertEqual(DirectoryEvents.fileSystemType(of: "/srv/nfs/flink", mounts: mounts), "nfs4")
        XCTAssertEqual(DirectoryEvents.fileSystemType(of: "/srv/nfs/local/flink", mounts: mounts), "tmpfs")
        XCTAssertEqual(DirectoryEvents.fileSystemType(of: "/srv/nfsx", mounts: mounts), "ext4")
        XCTAssertTrue(DirectoryEvents.isRemote("nfs4"))
        XCTAssertTrue(DirectoryEvents.isRemote("cifs"))
        XCTAssertTrue(DirectoryEvents.isRemote("fuse.s3fs"))
        XCTAssertFalse(DirectoryEvents.isRemote("ext4"))
        XCTAssertFalse(DirectoryEvents.isRemote("tmpfs"))
    }
}
