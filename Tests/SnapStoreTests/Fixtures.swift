import Foundation
import SnapStore
import XCTest

/// A temporary store and state directory, removed after the test.
final class Workspace {
    let root: URL
    let state: URL
    let storeURL: URL
    let store: Store

    init(job running: Bool = true) throws {
        root = URL(fileURLWithPath: NSTemporaryDirectory()).appendingPathComponent("snapfs-test-\(UUID().uuidString)")
        state = root.appendingPathComponent("state")
        storeURL = root.appendingPathComponent("store")
        try FileManager.default.createDirectory(at: state, withIntermediateDirectories: true)
        store = try Store.create(at: storeURL, engine: "local", settings: ["state_dir": state.path, "job_state": running ? "running" : "stopped"])
    }

    deinit { try? FileManager.default.removeItem(at: root) }

    func write(_ path: String, _ content: String) throws {
        let url = state.appendingPathComponent(path)
        try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        try Data(content.utf8).write(to: url)
    }

    /// The state as a user would check it: every file's checksum by path.
    func stateChecksums() throws -> [String: String] {
        var out: [String: String] = [:]
        for e in try FileTreeSource(root: state).scan() where e.type == .file {
            out[e.path] = Store.sha256(ofFile: state.path, e.path)
        }
        return out
    }

    @discardableResult
    func snapshot(_ format: SnapshotFormat = .nativeIncremental, kind: SnapshotKind = .checkpoint, label: String? = nil) throws -> Snapshot {
        let base = try store.snapshots().filter { $0.format != .canonical }.last
        return try SnapshotBuilder(store: store).build(from: FileTreeSource(root: state), format: format, kind: kind, label: label, base: base)
    }

    /// A snapshot's content read back through its stored objects.
    func contentChecksums(_ name: String) throws -> [String: String] {
        let s = try store.snapshot(named: name)
        var out: [String: String] = [:]
        for e in try store.entries(of: s.id) where e.type == .file {
            out[e.path] = Store.sha256(ofFile: store.root.path, e.objectPath!)
        }
        return out
    }

    func filesUnder(_ dir: String) -> [String] {
        let base = storeURL.appendingPathComponent(dir).path
        guard let en = FileManager.default.enumerator(atPath: base) else { return [] }
        var out: [String] = []
        while let p = en.nextObject() as? String {
            var isDir: ObjCBool = false
            if FileManager.default.fileExists(atPath: base + "/" + p, isDirectory: &isDir), !isDir.boolValue { out.append(p) }
        }
        return out.sorted()
    }
}

func XCTAssertThrowsStoreError<T>(_ body: @autoclosure () throws -> T, _ check: (StoreError) -> Bool,
                                  file: StaticString = #filePath, line: UInt = #line) {
    do {
        _ = try body()
        XCTFail("expected an error", file: file, line: line)
    } catch let e as StoreError {
        XCTAssertTrue(check(e), "unexpected error: \(e)", file: file, line: line)
    } catch {
        XCTFail("unexpected error type: \(error)", file: file, line: line)
    }
}
