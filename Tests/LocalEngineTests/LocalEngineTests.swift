import Foundation
import LocalEngine
import SnapStore
import Synchronization
import XCTest

/// A live state directory and a store for it, removed after the test.
final class LiveState {
    let root: URL
    let state: URL
    let store: Store
    let engine: LocalEngine

    init(storeAt storeURL: URL? = nil) throws {
        root = URL(fileURLWithPath: NSTemporaryDirectory()).appendingPathComponent("snapfs-engine-\(UUID().uuidString)")
        state = root.appendingPathComponent("state")
        try FileManager.default.createDirectory(at: state, withIntermediateDirectories: true)
        store = try Store.create(at: storeURL ?? root.appendingPathComponent("store"), engine: "local",
                                 settings: ["state_dir": state.path, "job_state": "running"])
        engine = try LocalEngine.forStore(store)
    }

    deinit { try? FileManager.default.removeItem(at: root) }

    func write(_ path: String, _ data: Data) throws {
        let url = state.appendingPathComponent(path)
        try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        try data.write(to: url)
    }

    func write(_ path: String, _ text: String) throws { try write(path, Data(text.utf8)) }

    func snapshot(_ format: SnapshotFormat = .nativeIncremental, kind: SnapshotKind = .checkpoint, label: String? = nil) throws -> Snapshot {
        try engine.takeSnapshot(format: format, kind: kind, label: label, progress: nil)
    }

    /// What a user would compare: every regular file's SHA-256 by path.
    func stateChecksums() throws -> [String: String] {
        var out: [String: String] = [:]
        for e in try FileTreeSource(root: state).scan() where e.type == .file {
            out[e.path] = Store.sha256(ofFile: state.path, e.path)
        }
        return out
    }

    func snapshotChecksums(_ name: String) throws -> [String: String] {
        let s = try store.snapshot(named: name)
        var out: [String: String] = [:]
        for e in try store.entries(of: s.id) where e.type == .file {
            out[e.path] = Store.sha256(ofFile: store.root.path, e.objectPath!)
        }
        return out
    }

    /// Every file physically present under the store's object directories.
    func storedFiles() -> Set<String> {
        var out = Set<String>()
        for top in store.managedRoots {
            let base = store.root.appendingPathComponent(top).path
            guard let en = FileManager.default.enumerator(atPath: base) else { continue }
            while let p = en.nextObject() as? String {
                var isDir: ObjCBool = false
                if FileManager.default.fileExists(atPath: base + "/" + p, isDirectory: &isDir), !isDir.boolValue { out.insert(top + "/" + p) }
            }
        }
        return out
    }
}

/// How many more times something may happen.
final class Countdown: Sendable {
    private let left: Mutex<Int>
    init(_ n: Int) { left = Mutex(n) }
    func take() -> Bool { left.withLock { n in guard n > 0 else { return false }; n -= 1; return true } }
}

/// A state directory whose writer touches a file while the snapshot copies it, as a live job would.
struct InterferingSource: SnapshotSource {
    let inner: FileTreeSource
    let victim: String
    /// How many copies of `victim` see a concurrent write; afterwards the file holds still.
    let interferences: Countdown
    let action: @Sendable (URL) throws -> Void

    var description: String { inner.description }
    var allowsReuse: Bool { inner.allowsReuse }
    func scan() throws(StoreError) -> [SourceEntry] { try inner.scan() }
    func read(_ entry: SourceEntry, into sink: (UnsafeRawBufferPointer) throws -> Void) throws -> SourceEntry {
        var fired = false
        return try inner.read(entry) { chunk in
            if entry.path == victim, !fired, interferences.take() {
                fired = true
                try action(inner.root.appendingPathComponent(victim))
            }
            try sink(chunk)
        }
    }
}

final class LocalEngineTests: XCTestCase {
    func testIncrementalWritesOnlyChangedFilesAndReadsBackEveryState() throws {
        let w = try LiveState()
        for i in 0..<50 { try w.write("data/f\(i)", "file \(i) " + String(repeating: "x", count: i * 10)) }
        let s1 = try w.snapshot()
        let state1 = try w.stateChecksums()
        let after1 = w.storedFiles()
        XCTAssertEqual(after1.count, 50, "the first incremental snapshot copies every file")

        try w.write("data/f3", "changed")
        try w.write("data/f7", "changed too")
        try w.write("data/new", "new file")
        try FileManager.default.removeItem(at: w.state.appendingPathComponent("data/f9"))
        let s2 = try w.snapshot()
        let state2 = try w.stateChecksums()
        let after2 = w.storedFiles()
        XCTAssertEqual(after2.subtracting(after1).count, 3, "only the two changed files and the new one are written")

        XCTAssertEqual(try w.snapshotChecksums(s1.name), state1)
        XCTAssertEqual(try w.snapshotChecksums(s2.name), state2)
        XCTAssertNil(try w.snapshotChecksums(s2.name)["data/f9"])
    }

    func testFullSnapshotDependsOnNothingAndCanonicalIsCheckableWithStandardTools() throws {
        let w = try LiveState()
        for i in 0..<20 { try w.write("f\(i)", "content \(i)") }
        let inc = try w.snapshot()
        let full = try w.snapshot(.nativeFull, kind: .user, label: "full")
        let canon = try w.snapshot(.canonical, kind: .user, label: "portable")
        let expected = try w.stateChecksums()
        // A newer checkpoint so that `inc` is no longer the recovery point, then delete it.
        _ = try w.snapshot()
        _ = try w.store.delete(inc.name)
        XCTAssertEqual(try w.snapshotChecksums(full.name), expected)
        XCTAssertEqual(try w.snapshotChecksums(canon.name), expected)

        let fullObjects = Set(try w.store.entries(of: full.id).compactMap(\.objectPath))
        let canonObjects = Set(try w.store.entries(of: canon.id).compactMap(\.objectPath))
        XCTAssertTrue(fullObjects.isDisjoint(with: canonObjects))
        XCTAssertEqual(fullObjects.count, 20, "a full snapshot writes every file anew")

        // The canonical layout is plain files plus SHA256SUMS that coreutils can check with no SnapFS installed.
        let dir = try XCTUnwrap(canon.directory.map { w.store.root.appendingPathComponent($0) })
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = ["sha256sum", "--quiet", "-c", "SHA256SUMS"]
        p.currentDirectoryURL = dir
        try p.run(); p.waitUntilExit()
        XCTAssertEqual(p.terminationStatus, 0, "sha256sum -c SHA256SUMS in \(dir.path)")
    }

    func testFileWrittenDuringCopyIsCopiedAgainNeverHalfCopied() throws {
        let w = try LiveState()
        let big = Data((0..<(3 << 20)).map { UInt8(truncatingIfNeeded: $0 &* 31) })
        try w.write("big", big)
        try w.write("small", "small")
        let source = InterferingSource(inner: FileTreeSource(root: w.state), victim: "big", interferences: Countdown(1)) { url in
            let h = try FileHandle(forWritingTo: url)
            try h.seekToEnd(); try h.write(contentsOf: Data("appended during copy".utf8)); try h.close()
        }
        let s = try SnapshotBuilder(store: w.store).build(from: source, format: .nativeFull, kind: .checkpoint, label: nil)
        XCTAssertEqual(try w.snapshotChecksums(s.name), try w.stateChecksums(), "the snapshot holds the file as it was after the write")
        let report = try w.store.verify()
        XCTAssertTrue(report.problems.isEmpty, "\(report.problems)")
    }

    func testFileThatNeverHoldsStillFailsTheSnapshotClearlyAndChangesNothing() throws {
        let w = try LiveState()
        try w.write("big", Data(count: 3 << 20))
        let first = try w.snapshot()
        let filesBefore = w.storedFiles()
        let source = InterferingSource(inner: FileTreeSource(root: w.state), victim: "big", interferences: Countdown(1000)) { url in
            let h = try FileHandle(forWritingTo: url)
            try h.seekToEnd(); try h.write(contentsOf: Data("more".utf8)); try h.close()
        }
        do {
            _ = try SnapshotBuilder(store: w.store).build(from: source, format: .nativeFull, kind: .checkpoint, label: nil)
            XCTFail("a file that keeps changing must fail the snapshot")
        } catch {
            XCTAssertTrue("\(error)".contains("'big' kept changing"), "\(error)")
        }
        XCTAssertEqual(try w.store.snapshots().map(\.name), [first.name])
        XCTAssertEqual(w.storedFiles(), filesBefore, "no half-written object is left behind")
    }

    func testStateFileDeletedMidSnapshotIsTakenFromAFreshScan() throws {
        let w = try LiveState()
        try w.write("a", Data(count: 2 << 20))
        try w.write("b", "b")
        // The writer deletes "b" while "b" itself is being copied: files are copied on several threads, so
        // deleting it from another file's copy could come after "b" was already copied.
        let source = InterferingSource(inner: FileTreeSource(root: w.state), victim: "b", interferences: Countdown(1)) { url in
            try FileManager.default.removeItem(at: url)
        }
        let s = try SnapshotBuilder(store: w.store).build(from: source, format: .nativeIncremental, kind: .checkpoint, label: nil)
        XCTAssertEqual(Set(try w.snapshotChecksums(s.name).keys), ["a"], "the snapshot is consistent with the state after the delete")
        XCTAssertEqual(try w.snapshotChecksums(s.name), try w.stateChecksums())
    }

    func testFullDiskIsAClearErrorAndTheStoreIsUnchanged() throws {
        let mnt = URL(fileURLWithPath: NSTemporaryDirectory()).appendingPathComponent("snapfs-small-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: mnt, withIntermediateDirectories: true)
        defer { runTool("/bin/umount", [mnt.path]); try? FileManager.default.removeItem(at: mnt) }
        guard runTool("/bin/mount", ["-t", "tmpfs", "-o", "size=2m", "tmpfs", mnt.path]) == 0 else {
            return XCTFail("cannot mount a 2 MiB tmpfs at \(mnt.path): this test needs root (the test suite runs as root)")
        }
        let w = try LiveState(storeAt: mnt.appendingPathComponent("store"))
        try w.write("small", "fits")
        let first = try w.snapshot()
        let filesBefore = w.storedFiles()
        // Not zeros: a run of zeros is stored as a hole and would fit.
        try w.write("huge", Data(repeating: 0x5a, count: 4 << 20))
        do {
            _ = try w.snapshot(.nativeFull, kind: .user, label: "too-big")
            XCTFail("a snapshot larger than the disk must fail")
        } catch let e as StoreError {
            XCTAssertTrue("\(e)".contains("No space left on device"), "the error names the cause: \(e)")
        }
        XCTAssertEqual(try w.store.snapshots().map(\.name), [first.name])
        XCTAssertEqual(w.storedFiles(), filesBefore, "nothing of the failed snapshot stays on the full disk")
        XCTAssertTrue(try w.store.verify().problems.isEmpty)
        XCTAssertThrowsError(try w.store.snapshot(named: "too-big"))
        // Once space is back the same label can be used.
        try FileManager.default.removeItem(at: w.state.appendingPathComponent("huge"))
        XCTAssertEqual(try w.snapshot(.nativeFull, kind: .user, label: "too-big").name, "too-big")
    }

    func testSchedulerKeepsTheNewestCheckpointsAndNeverRemovesUserSnapshots() throws {
        let w = try LiveState()
        try w.write("f", "0")
        let user = try w.snapshot(.nativeIncremental, kind: .user, label: "keep-me")
        let userState = try w.stateChecksums()
        let scheduler = CheckpointScheduler(store: w.store, engine: w.engine, interval: 3600, retain: 3)
        var taken: [String] = []
        for i in 1...6 {
            try w.write("f", "\(i)")
            taken.append(try XCTUnwrap(scheduler.checkpointOnce()).name)
        }
        let names = try w.store.snapshots().map(\.name)
        XCTAssertEqual(Set(names), Set([user.name] + taken.suffix(3)))
        XCTAssertEqual(try w.snapshotChecksums(user.name), userState)
        XCTAssertTrue(try w.store.verify().problems.isEmpty)
    }

    /// A held checkpoint outlives the scheduler's retention; the refusal, with the hold's reason, is in the events.
    func testSchedulerRetentionPassesOverAHeldCheckpoint() throws {
        let w = try LiveState()
        let scheduler = CheckpointScheduler(store: w.store, engine: w.engine, interval: 3600, retain: 2)
        try w.write("f", "0")
        let first = try XCTUnwrap(scheduler.checkpointOnce())
        try w.store.hold(first.name, reason: "compare after the upgrade")
        var taken: [String] = []
        for i in 1...4 {
            try w.write("f", "\(i)")
            taken.append(try XCTUnwrap(scheduler.checkpointOnce()).name)
        }
        XCTAssertEqual(try w.store.snapshots().map(\.name), [first.name] + taken.suffix(2))
        let refusals = try w.store.events().filter { $0.type == "refusal" && $0.snapshot == first.name }
        XCTAssertEqual(refusals.count, 3, "once for each pass that found it beyond the newest two")
        XCTAssertTrue(refusals.allSatisfy { $0.detail == "delete refused (retention): held: compare after the upgrade" }, "\(refusals)")
        try w.store.release(first.name)
        try w.write("f", "5")
        _ = try XCTUnwrap(scheduler.checkpointOnce())
        XCTAssertFalse(try w.store.snapshots().map(\.name).contains(first.name), "released, the next pass removes it")
    }

    func testSchedulerRunsOnItsInterval() throws {
        let w = try LiveState()
        try w.write("f", "x")
        let scheduler = CheckpointScheduler(store: w.store, engine: w.engine, interval: 0.2, retain: 2)
        scheduler.start()
        defer { scheduler.stop() }
        let deadline = Date().addingTimeInterval(30)
        while Date() < deadline, (try w.store.events().filter { $0.type == "retention" }).isEmpty { Thread.sleep(forTimeInterval: 0.1) }
        XCTAssertFalse(try w.store.events().filter { $0.type == "retention" }.isEmpty, "retention ran after a few intervals")
        XCTAssertLessThanOrEqual(try w.store.snapshots().count, 3)
    }
}

@discardableResult
func runTool(_ tool: String, _ args: [String]) -> Int32 {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: tool)
    p.arguments = args
    p.standardOutput = FileHandle.nullDevice
    p.standardError = FileHandle.nullDevice
    do { try p.run() } catch { return -1 }
    p.waitUntilExit()
    return p.terminationStatus
}
