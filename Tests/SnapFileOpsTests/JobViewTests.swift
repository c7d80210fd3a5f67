import FlinkEngine
import FlinkFixtures
import Foundation
import SnapFileOps
import SnapStore
import XCTest

/// A copy of the first real Flink store (four jobs, two savepoints) with a file system over it, removed after the
/// test. Job c4f302 is the configured job and there is no JobManager: its newest snapshot is the recovery point.
final class FlinkFixture {
    static let jobA = "c4f302458e6451f29e233030dfe8535c"
    static let jobD = "dd758ebfe2c5e0335122d7ddaf752ba0"
    static let jobs = ["4b913385afc25f46a0551aee1c033ec6", jobA, jobD, "e9201ce7019c330de1f0d46a06815e2d"]

    let root: URL
    let store: Store
    let settings: FlinkStoreSettings
    let fs: SnapFileSystem
    /// Resolves paths and lists directories as the kernel does (`Fixture`'s helpers, over this store).
    let paths: ViewPaths

    /// `withhold`: store-relative snapshot directories moved out of the store before the first import, so a test
    /// can bring them back as checkpoints Flink has just completed.
    /// `rest`: a JobManager to ask (asked once at open; `askCluster` asks again).
    init(withhold: [String] = [], rest: String? = nil) throws {
        root = try FlinkFixtures.copy(store: 1)
        for dir in withhold {
            try FileManager.default.moveItem(at: root.appendingPathComponent(dir), to: Self.aside(root, dir))
        }
        settings = FlinkStoreSettings(restURL: rest, jobID: Self.jobA, pathMap: [(from: FlinkFixtures.writtenAt, to: root.path)])
        store = try Store.create(at: root, engine: FlinkStoreSettings.engineName, settings: settings.metaRows, adopting: true,
                                 rules: [FlinkRules()])
        let engine = try FlinkEngine.forStore(store)
        try FlinkImporter(store: store, settings: settings).refresh()
        fs = SnapFileSystem(store: store, engine: engine)
        paths = ViewPaths(fs: fs)
    }

    static func aside(_ root: URL, _ dir: String) -> URL {
        root.deletingLastPathComponent().appendingPathComponent(root.lastPathComponent + "-aside-" + dir.replacingOccurrences(of: "/", with: "_"))
    }

    /// Asks the JobManager again, as the mount's background monitor does on its timer.
    func askCluster() throws {
        try XCTUnwrap(store.hooks as? FlinkHooks).cluster.poll()
    }

    /// Puts a withheld snapshot directory back, as Flink completing it would, and imports it.
    func complete(_ dir: String) throws {
        try FileManager.default.moveItem(at: Self.aside(root, dir), to: root.appendingPathComponent(dir))
        try FlinkImporter(store: store, settings: settings).refresh()
    }

    deinit {
        try? FileManager.default.removeItem(at: root)
        for dir in ["checkpoints/\(Self.jobD)/chk-17"] { try? FileManager.default.removeItem(at: Self.aside(root, dir)) }
    }
}

/// Path walking over any file system, as `Fixture` does for local stores.
struct ViewPaths {
    let fs: SnapFileSystem

    func resolve(_ path: String) throws -> Entry {
        var e = Entry(attr: try fs.getattr(InodeNumber.root), entryTimeout: 0, attrTimeout: 0)
        for c in path.split(separator: "/") { e = try fs.lookup(parent: e.nodeID, name: String(c)) }
        return e
    }

    func entries(_ path: String) throws -> [DirEntry] {
        let dir = try resolve(path).nodeID
        var out: [DirEntry] = []
        while true {
            let page = try fs.readdir(dir, offset: out.count).prefix(3)
            if page.isEmpty { break }
            out += page
        }
        return out.filter { $0.name != "." && $0.name != ".." }
    }

    func names(_ path: String) throws -> [String] { try entries(path).map(\.name) }

    func read(_ path: String) throws -> Data {
        let file = try resolve(path).nodeID
        var out = Data()
        var buf = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = try buf.withUnsafeMutableBytes { try fs.read(file, offset: Int64(out.count), into: $0) }
            if n == 0 { break }
            out.append(contentsOf: buf[0..<n])
        }
        return out
    }

    /// Every path below `path` with its `stat` (inode number included), relative to `path`.
    func tree(_ path: String) throws -> [String: Attr] {
        var out: [String: Attr] = [:]
        func walk(_ rel: String) throws {
            for e in try entries(rel.isEmpty ? path : path + "/" + rel) {
                let child = rel.isEmpty ? e.name : rel + "/" + e.name
                let attr = try resolve(path + "/" + child).attr
                XCTAssertEqual(e.ino, attr.ino, "readdir and stat agree on \(path)/\(child)")
                out[child] = attr
                if attr.isDirectory { try walk(child) }
            }
        }
        try walk("")
        return out
    }
}

final class JobViewTests: XCTestCase {
    /// `by-job/` holds one directory per job, each with the job's snapshots under Flink's names and `latest`
    /// pointing at the job's recovery point (its newest snapshot by checkpoint id while no JobManager answers).
    func testByJobShowsEveryJobUnderFlinkNamesWithLatest() throws {
        let f = try FlinkFixture()
        XCTAssertTrue(try f.paths.names("").contains("by-job"))
        XCTAssertEqual(try f.paths.names("by-job"), FlinkFixture.jobs)
        let a = try f.paths.names("by-job/\(FlinkFixture.jobA)")
        XCTAssertEqual(Set(a), ["chk-11", "chk-12", "chk-13", "savepoint-c4f302-a3c72ffbb47e", "savepoint-c4f302-ffe50290a9b7", "latest"])
        XCTAssertEqual(a.last, "latest")
        let expectedLatest = [FlinkFixture.jobs[0]: "chk-5", FlinkFixture.jobA: "chk-13", FlinkFixture.jobD: "chk-17", FlinkFixture.jobs[3]: "chk-13"]
        for (job, target) in expectedLatest {
            let link = try f.paths.resolve("by-job/\(job)/latest")
            XCTAssertTrue(link.attr.isSymlink)
            XCTAssertEqual(try f.fs.readlink(link.nodeID), target, job)
            XCTAssertEqual(link.attr.size, Int64(target.utf8.count))
            // The link resolves inside the job's directory, to the snapshot of that job.
            XCTAssertEqual(try f.paths.resolve("by-job/\(job)/\(target)").attr.ino,
                           try f.paths.resolve(job.prefix(6) + "-" + target).attr.ino)
        }
        // Names that are not there are not there.
        XCTAssertFSError(try f.paths.resolve("by-job/ffffffffffffffffffffffffffffffff"), ENOENT)
        XCTAssertFSError(try f.paths.resolve("by-job/\(FlinkFixture.jobA)/chk-5"), ENOENT)
        XCTAssertFSError(try f.paths.resolve("by-job/\(FlinkFixture.jobA)/c4f302-chk-13"), ENOENT)
    }

    /// Every snapshot's root and every file and directory below it show the same inode number, attributes and
    /// bytes through the flat root and through `by-job/`; only the kernel's handle of a directory differs.
    func testSameInodeNumbersAndContentInBothViews() throws {
        let f = try FlinkFixture()
        var compared = 0
        for s in try f.store.snapshots() {
            let job = try XCTUnwrap(s.job, s.name)
            let shown = String(try XCTUnwrap(s.directory?.split(separator: "/").last))
            let flat = try f.paths.resolve(s.name), viewed = try f.paths.resolve("by-job/\(job)/\(shown)")
            XCTAssertEqual(flat.attr, viewed.attr, s.name)
            XCTAssertNotEqual(flat.nodeID, viewed.nodeID, "a directory has one handle per view")
            let a = try f.paths.tree(s.name), b = try f.paths.tree("by-job/\(job)/\(shown)")
            XCTAssertFalse(a.isEmpty)
            XCTAssertEqual(a, b, s.name)
            for (path, attr) in a where attr.isRegular {
                // (One savepoint of the fixture lacks some of its files: both views fail alike on those.)
                let flatBytes = try? f.paths.read("\(s.name)/\(path)")
                XCTAssertEqual(flatBytes, try? f.paths.read("by-job/\(job)/\(shown)/\(path)"), path)
                if flatBytes != nil { compared += 1 }
                XCTAssertEqual(try f.paths.resolve("\(s.name)/\(path)").nodeID, try f.paths.resolve("by-job/\(job)/\(shown)/\(path)").nodeID,
                               "a file is one node wherever it is reached")
            }
            for (path, attr) in a where attr.isDirectory {
                XCTAssertNotEqual(try f.paths.resolve("\(s.name)/\(path)").nodeID, try f.paths.resolve("by-job/\(job)/\(shown)/\(path)").nodeID, path)
            }
            XCTAssertEqual(try f.fs.getxattr(flat.nodeID, name: "user.snapfs.kind"), try f.fs.getxattr(viewed.nodeID, name: "user.snapfs.kind"))
        }
        XCTAssertGreaterThan(compared, 14)
        // Another instance (a remount) gives the same numbers: they are hashes of identities.
        let again = ViewPaths(fs: SnapFileSystem(store: f.store, engine: try FlinkEngine.forStore(f.store)))
        let path = "by-job/\(FlinkFixture.jobA)/chk-12"
        XCTAssertEqual(try again.tree(path), try f.paths.tree(path))
        XCTAssertEqual(try again.resolve(path).nodeID, try f.paths.resolve(path).nodeID)
    }

    /// `rm -rf by-job/J/chk-N` is the checked delete of that snapshot: the recovery point refuses its first
    /// unlink and its rmdir with EBUSY and keeps everything; another snapshot goes from both views.
    func testRemoveThroughByJobIsTheCheckedDelete() throws {
        let f = try FlinkFixture()
        let jobDir = "by-job/\(FlinkFixture.jobA)"
        let point = "\(jobDir)/chk-13"
        let metadataDir = try f.paths.resolve("\(point)/checkpoints/\(FlinkFixture.jobA)/chk-13").nodeID
        XCTAssertFSError(try f.fs.unlink(parent: metadataDir, name: "_metadata"), EBUSY)
        XCTAssertTrue(try f.paths.names("\(point)/checkpoints/\(FlinkFixture.jobA)/chk-13").contains("_metadata"), "nothing staged")
        XCTAssertFSError(try f.fs.rmdir(parent: try f.paths.resolve(jobDir).nodeID, name: "chk-13"), EBUSY)
        XCTAssertNoThrow(try f.store.snapshot(named: "c4f302-chk-13"))
        let refusals = try f.store.events().filter { $0.type == "refusal" && $0.snapshot == "c4f302-chk-13" }
        XCTAssertTrue(refusals.contains { $0.detail.contains("recovery point") }, "\(refusals)")

        // chk-11 is not protected: `rm -rf` stages every entry bottom-up, then the rmdir deletes it.
        let victim = "\(jobDir)/chk-11"
        func removeAll(_ rel: String) throws {
            let dir = try f.paths.resolve(rel)
            for e in try f.paths.entries(rel) {
                let child = try f.paths.resolve("\(rel)/\(e.name)")
                if child.attr.isDirectory {
                    try removeAll("\(rel)/\(e.name)")
                    try f.fs.rmdir(parent: dir.nodeID, name: e.name)
                } else {
                    try f.fs.unlink(parent: dir.nodeID, name: e.name)
                }
            }
        }
        try removeAll(victim)
        XCTAssertEqual(try f.paths.names(victim), [])
        XCTAssertEqual(try f.paths.names("c4f302-chk-11"), [], "staged entries are hidden in both views")
        try f.fs.rmdir(parent: try f.paths.resolve(jobDir).nodeID, name: "chk-11")
        XCTAssertThrowsError(try f.store.snapshot(named: "c4f302-chk-11"))
        XCTAssertFalse(try f.paths.names(jobDir).contains("chk-11"))
        XCTAssertFalse(try f.paths.names("").contains("c4f302-chk-11"))
        XCTAssertTrue(try f.store.events().contains { $0.type == "delete" && $0.snapshot == "c4f302-chk-11" })
        // The kernel is told to forget the flat name the delete took away, and the job's listing.
        let changes = f.fs.poll()
        XCTAssertTrue(changes.names.contains("c4f302-chk-11"), "\(changes)")
        XCTAssertTrue(changes.entries.contains(ChangedEntry(parent: InodeNumber.job(FlinkFixture.jobA), name: "chk-11")), "\(changes)")
        XCTAssertTrue(changes.directories.contains(InodeNumber.job(FlinkFixture.jobA)), "\(changes)")
        XCTAssertEqual(try f.fs.readlink(try f.paths.resolve("\(jobDir)/latest").nodeID), "chk-13", "latest stays")
    }

    /// Nothing but reads and deletes happen in `by-job/`: a move would rename the snapshot in the catalog but not
    /// the directory its name there comes from. Each refusal is EPERM and an event.
    func testMovesAndCreationsInByJobAreRefused() throws {
        let f = try FlinkFixture()
        let jobs = try f.paths.resolve("by-job").nodeID
        let job = try f.paths.resolve("by-job/\(FlinkFixture.jobA)").nodeID
        let name = "savepoint-c4f302-ffe50290a9b7"
        XCTAssertFSError(try f.fs.rename(parent: job, name: name, newParent: job, newName: "renamed", flags: 0), EPERM)
        XCTAssertFSError(try f.fs.rename(parent: job, name: name, newParent: InodeNumber.root, newName: "renamed", flags: 0), EPERM)
        XCTAssertFSError(try f.fs.rename(parent: InodeNumber.root, name: name, newParent: job, newName: "renamed", flags: 0), EPERM)
        XCTAssertFSError(try f.fs.rename(parent: InodeNumber.root, name: "by-job", newParent: InodeNumber.root, newName: "x", flags: 0), EPERM)
        XCTAssertFSError(try f.fs.mkdir(parent: job, name: "new"), EPERM)
        XCTAssertFSError(try f.fs.mkdir(parent: jobs, name: "new"), EPERM)
        XCTAssertFSError(try f.fs.create(parent: job, name: "new"), EPERM)
        XCTAssertFSError(try f.fs.symlink(parent: job, name: "new", target: "chk-11"), EPERM)
        XCTAssertFSError(try f.fs.unlink(parent: job, name: "latest"), EPERM)
        XCTAssertFSError(try f.fs.rmdir(parent: InodeNumber.root, name: "by-job"), EPERM)
        XCTAssertFSError(try f.fs.rmdir(parent: jobs, name: FlinkFixture.jobA), ENOTEMPTY)
        XCTAssertFSError(try f.fs.unlink(parent: job, name: "chk-11"), EISDIR)
        // Inside a snapshot reached through by-job/, writes are refused as at the root: EROFS.
        let inside = try f.paths.resolve("by-job/\(FlinkFixture.jobA)/\(name)").nodeID
        XCTAssertFSError(try f.fs.mkdir(parent: inside, name: "x"), EROFS)
        XCTAssertFSError(try f.fs.rename(parent: inside, name: "_metadata", newParent: inside, newName: "y", flags: 0), EROFS)
        XCTAssertNoThrow(try f.store.snapshot(named: name))
        let refusals = try f.store.events().filter { $0.type == "refusal" }.map(\.detail)
        XCTAssertTrue(refusals.contains { $0.contains("rename of by-job/") && $0.contains("mv MNT/NAME MNT/NEW") }, "\(refusals)")
        XCTAssertTrue(refusals.contains { $0.contains("mkdir by-job/") }, "\(refusals)")
    }

    /// A checkpoint that completes appears in its job's directory and moves its `latest`, and the poller tells
    /// the kernel which names and listings to forget.
    func testANewCheckpointAppearsAndMovesLatest() throws {
        let dir = "checkpoints/\(FlinkFixture.jobD)/chk-17"
        let f = try FlinkFixture(withhold: [dir])
        let jobDir = "by-job/\(FlinkFixture.jobD)"
        let latest = try f.paths.resolve("\(jobDir)/latest")
        XCTAssertEqual(try f.fs.readlink(latest.nodeID), "chk-16")
        XCTAssertFalse(try f.paths.names(jobDir).contains("chk-17"))
        let before = try f.fs.getattr(try f.paths.resolve(jobDir).nodeID).mtimeNanos
        _ = f.fs.poll()

        try f.complete(dir)
        let changes = f.fs.poll()
        let job = InodeNumber.job(FlinkFixture.jobD)
        XCTAssertTrue(changes.entries.contains(ChangedEntry(parent: job, name: "chk-17")), "\(changes)")
        XCTAssertTrue(changes.entries.contains(ChangedEntry(parent: job, name: "latest")), "\(changes)")
        XCTAssertTrue(changes.directories.contains(job), "the job's cached listing is dropped")
        XCTAssertFalse(changes.entries.contains { $0.parent == InodeNumber.job(FlinkFixture.jobA) }, "other jobs are untouched")
        XCTAssertEqual(try f.fs.readlink(latest.nodeID), "chk-17")
        XCTAssertTrue(try f.paths.names(jobDir).contains("chk-17"))
        XCTAssertGreaterThan(try f.fs.getattr(try f.paths.resolve(jobDir).nodeID).mtimeNanos, before,
                             "the listing's time moves, so a kernel that kept it rereads it")
        XCTAssertTrue(f.fs.poll().isEmpty, "told once")
    }

    /// The listing follows the JobManager's answer, not only the catalog: the configured job reported CANCELED
    /// has no recovery point any more, so the root's `latest` stops naming it and the poller tells the kernel;
    /// a JobManager that stops answering brings the fallback (the newest checkpoint) back. The catalog never changes.
    /// (Job A's own `by-job/` link stays at chk-13 throughout: its newest snapshot by id is also its newest checkpoint.)
    func testLatestFollowsTheJobManagerWithoutACatalogChange() throws {
        let cluster = FakeCluster(writtenAt: FlinkFixtures.writtenAt, jobs: [
            FlinkFixture.jobA: .init(state: "RUNNING", latest: (13, "checkpoints/\(FlinkFixture.jobA)/chk-13")),
        ])
        let fake = try cluster.serve()
        defer { fake.stop() }
        let f = try FlinkFixture(rest: fake.url)
        let flatLatest = try f.paths.resolve("latest")
        let point = try f.paths.resolve("c4f302-chk-13").nodeID
        func deletable() throws -> String { String(decoding: try f.fs.getxattr(point, name: "user.snapfs.deletable"), as: UTF8.self) }
        XCTAssertEqual(try f.fs.readlink(flatLatest.nodeID), "c4f302-chk-13", "the configured job's recovery point")
        XCTAssertTrue(try deletable().hasPrefix("no"), (try? deletable()) ?? "")
        _ = f.fs.poll()
        let generation = f.store.generation()
        let rootTime = try f.fs.getattr(InodeNumber.root).mtimeNanos

        cluster.set(FlinkFixture.jobA, state: "CANCELED")
        try f.askCluster()
        let changes = f.fs.poll()
        XCTAssertEqual(f.store.generation(), generation, "no catalog change")
        XCTAssertEqual(changes.names, ["latest"], "the kernel forgets the link")
        XCTAssertNotEqual(try f.fs.readlink(flatLatest.nodeID), "c4f302-chk-13")
        XCTAssertGreaterThan(try f.fs.getattr(InodeNumber.root).mtimeNanos, rootTime, "a kernel that kept the root's listing rereads it")
        XCTAssertEqual(try deletable(), "yes")
        XCTAssertEqual(try f.fs.readlink(try f.paths.resolve("by-job/\(FlinkFixture.jobA)/latest").nodeID), "chk-13")
        XCTAssertTrue(f.fs.poll().isEmpty, "told once")
        let statusGeneration = f.store.statusGeneration()
        try f.askCluster()
        XCTAssertEqual(f.store.statusGeneration(), statusGeneration, "the same answer again rereads nothing")

        // The JobManager goes quiet: every job's newest checkpoint is protected again, and `latest` says so.
        fake.stop()
        try f.askCluster()
        XCTAssertEqual(f.fs.poll().names, ["latest"])
        XCTAssertEqual(try f.fs.readlink(flatLatest.nodeID), "c4f302-chk-13")
        XCTAssertTrue(try deletable().hasPrefix("no"), (try? deletable()) ?? "")
        XCTAssertEqual(f.store.generation(), generation)
        XCTAssertTrue(f.fs.poll().isEmpty, "an answer that stays away is told once")
    }

    /// A delete elsewhere (the command line) of a snapshot the kernel knows under `by-job/` is announced there too.
    func testADeleteElsewhereIsAnnouncedInByJob() throws {
        let f = try FlinkFixture()
        XCTAssertTrue(try f.paths.names("by-job/\(FlinkFixture.jobA)").contains("chk-11"))
        _ = f.fs.poll()
        try f.store.delete("c4f302-chk-11")
        let changes = f.fs.poll()
        XCTAssertTrue(changes.names.contains("c4f302-chk-11"))
        XCTAssertTrue(changes.entries.contains(ChangedEntry(parent: InodeNumber.job(FlinkFixture.jobA), name: "chk-11")), "\(changes)")
        XCTAssertFSError(try f.paths.resolve("by-job/\(FlinkFixture.jobA)/chk-11"), ENOENT)
    }

    /// The local engine has no jobs: no `by-job/` in the listing, and the name is not there.
    func testLocalEngineShowsNoByJob() throws {
        let f = try Fixture()
        try f.write("a", "1")
        try f.snapshot()
        XCTAssertFalse(try f.names("").contains("by-job"))
        XCTAssertFSError(try f.resolve("by-job"), ENOENT)
        XCTAssertFSError(try f.fs.mkdir(parent: InodeNumber.root, name: "by-job"), EINVAL)
    }
}
