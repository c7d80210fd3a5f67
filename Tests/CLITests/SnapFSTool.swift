import BuiltTools
import Foundation
import SnapStore
import XCTest

/// The built `snapfs` executable, run as a user would run it.
enum SnapFSTool {
    /// `SNAPFS_BIN`, or the `snapfs` that SwiftPM built beside the test bundle.
    static var executable: URL { URL(fileURLWithPath: BuiltTools.snapfs) }

    struct Result {
        var status: Int32
        var stdout: String
        var stderr: String
    }

    /// Runs `snapfs ARGS` to completion (killed after `timeout` so a hang fails the test instead of blocking it).
    @discardableResult
    static func run(_ args: [String], timeout: TimeInterval = 300) throws -> Result {
        let p = Process()
        p.executableURL = executable
        p.arguments = args
        let out = Pipe(), err = Pipe()
        p.standardOutput = out; p.standardError = err
        var env = ProcessInfo.processInfo.environment
        env["SNAPFS_LOG"] = env["SNAPFS_LOG"] ?? "error"
        p.environment = env
        try p.run()
        let killer = DispatchWorkItem { if p.isRunning { p.terminate() } }
        DispatchQueue.global().asyncAfter(deadline: .now() + timeout, execute: killer)
        let o = out.fileHandleForReading.readDataToEndOfFile()
        let e = err.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        killer.cancel()
        return Result(status: p.terminationStatus, stdout: String(decoding: o, as: UTF8.self), stderr: String(decoding: e, as: UTF8.self))
    }

    /// Runs a command that must succeed and returns its standard output.
    static func ok(_ args: [String], file: StaticString = #filePath, line: UInt = #line) throws -> String {
        let r = try run(args)
        XCTAssertEqual(r.status, 0, "snapfs \(args.joined(separator: " ")): \(r.stderr)", file: file, line: line)
        return r.stdout
    }
}

/// A scratch directory removed after the test.
final class Scratch {
    let root: URL
    init() throws {
        root = URL(fileURLWithPath: NSTemporaryDirectory()).appendingPathComponent("snapfs-cli-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
    }
    deinit { try? FileManager.default.removeItem(at: root) }
    func path(_ p: String) -> String { root.appendingPathComponent(p).path }
}

/// Every regular file's SHA-256 under `dir`, by relative path: what a user compares with `sha256sum`.
func treeChecksums(_ dir: String) throws -> [String: String] {
    var out: [String: String] = [:]
    for e in try FileTreeSource(root: URL(fileURLWithPath: dir)).scan() where e.type == .file {
        out[e.path] = Store.sha256(ofFile: dir, e.path)
    }
    return out
}

/// Regular files under `dir`, relative.
func filesUnder(_ dir: String) -> Set<String> {
    var out = Set<String>()
    guard let en = FileManager.default.enumerator(atPath: dir) else { return out }
    while let p = en.nextObject() as? String {
        var isDir: ObjCBool = false
        if FileManager.default.fileExists(atPath: dir + "/" + p, isDirectory: &isDir), !isDir.boolValue { out.insert(p) }
    }
    return out
}

struct ListedSnapshot: Decodable {
    var name: String
    var kind: String
    var format: String
}
