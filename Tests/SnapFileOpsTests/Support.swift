import Foundation
import LocalEngine
import SnapFileOps
import SnapStore
import Synchronization
import XCTest

/// A clock the test moves by hand, so the staging window is tested without waiting and without timing assertions.
final class ManualClock: Sendable {
    private let t = Mutex(Date(timeIntervalSince1970: 1_800_000_000))
    func now() -> Date { t.withLock { $0 } }
    func advance(_ s: TimeInterval) { t.withLock { $0 = $0.addingTimeInterval(s) } }
}

/// A store with a live state directory and a file system over it, removed after the test.
final class Fixture {
    let root: URL
    let state: URL
    let store: Store
    let engine: LocalEngine
    let clock = ManualClock()
    let fs: SnapFileSystem

    init(stageWindow: TimeInterval = 60, running: Bool = true) throws {
        root = URL(fileURLWithPath: NSTemporaryDirectory()).appendingPathComponent("snapfs-ops-\(UUID().uuidString)")
        state = root.appendingPathComponent("state")
        try FileManager.default.createDirectory(at: state, withIntermediateDirectories: true)
        store = try Store.create(at: root.appendingPathComponent("store"), engine: "local",
                                 settings: ["state_dir": state.path, "job_state": running ? "running" : "stopped"])
        engine = LocalEngine(store: store, stateDirectory: state)
        let c = clock
        fs = SnapFileSystem(store: store, engine: engine, options: FileOpsOptions(stageWindow: stageWindow), clock: { c.now() })
    }

    func makeFS(stageWindow: TimeInterval = 60) -> SnapFileSystem {
        let c = clock
        return SnapFileSystem(store: store, engine: engine, options: FileOpsOptions(stageWindow: stageWindow), clock: { c.now() })
    }

    deinit { try? FileManager.default.removeItem(at: root) }

    func write(_ path: String, _ content: String) throws {
        let url = state.appendingPathComponent(path)
        try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        try Data(content.utf8).write(to: url)
    }

    @discardableResult
    func snapshot(_ format: SnapshotFormat = .nativeIncremental, label: String? = nil) throws -> Snapshot {
        try engine.takeSnapshot(format: format, kind: .checkpoint, label: label, progress: nil)
    }

    /// Resolves a path below the mount root the way the kernel does, one lookup per component.
    func resolve(_ path: String, in fs: SnapFileSystem? = nil) throws -> Entry {
        let fs = fs ?? self.fs
        var e = Entry(attr: try fs.getattr(InodeNumber.root), entryTimeout: 0, attrTimeout: 0)
        for c in path.split(separator: "/") { e = try fs.lookup(parent: e.nodeID, name: String(c)) }
        return e
    }

    /// The inode number `stat` shows.
    func ino(_ path: String) throws -> UInt64 { try resolve(path).attr.ino }

    /// The kernel's handle, which every request about the node names (differs from `ino` only in `by-job/`).
    func handle(_ path: String) throws -> UInt64 { try resolve(path).nodeID }

    func names(_ path: String) throws -> [String] {
        // Paged as the kernel pages it: a few entries per call, each call continuing at the last offset.
        let dir = try handle(path)
        var out: [DirEntry] = []
        while true {
            let page = try fs.readdir(dir, offset: out.count).prefix(3)
            if page.isEmpty { break }
            out += page
        }
        return out.map(\.name).filter { $0 != "." && $0 != ".." }
    }

    /// Reads as the kernel does: a `stat` first (the lookup), then reads by inode from offset 0 on.
    func read(_ path: String) throws -> Data {
        let file = try handle(path)
        var out = Data()
        var buf = [UInt8](repeating: 0, count: 7000)
        while true {
            let n = try buf.withUnsafeMutableBytes { try fs.read(file, offset: Int64(out.count), into: $0) }
            if n == 0 { break }
            out.append(contentsOf: buf[0..<n])
        }
        return out
    }

    /// `echo CONTENT > trigger` as the kernel delivers it on a mount that skips opens: the truncation of `>`,
    /// then one write at `offset` (0 unless a test continues an earlier write). Returns the error the shell
    /// would report (the write's).
    func echo(_ content: String, to format: String, offset: Int64 = 0) throws -> FSError? {
        let ino = try self.ino(".snapfs/trigger/\(format)")
        if offset == 0 { _ = try fs.setattr(ino, SetAttrRequest(size: 0, times: true)) }
        do {
            _ = try Array(content.utf8).withUnsafeBytes { try fs.write(ino, offset: offset, data: $0) }
        } catch let e as FSError {
            return e
        }
        return nil
    }
}

func XCTAssertFSError<T>(_ body: @autoclosure () throws -> T, _ expected: Int32, file: StaticString = #filePath, line: UInt = #line) {
    do {
        _ = try body()
        XCTFail("expected errno \(expected)", file: file, line: line)
    } catch let e as FSError {
        XCTAssertEqual(e.errno, expected, "unexpected error: \(e)", file: file, line: line)
    } catch {
        XCTFail("unexpected error type: \(error)", file: file, line: line)
    }
}
