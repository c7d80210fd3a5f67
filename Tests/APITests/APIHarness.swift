import BuiltTools
import Foundation
import XCTest

/// `snapfs serve` (or `mount … --listen`) run for real on an ephemeral loopback port, stopped with SIGTERM at the end.
final class ServedStore {
    let process = Process()
    /// `http://127.0.0.1:PORT`, as the daemon printed it.
    let base: String
    private let stderrPipe = Pipe()

    init(_ args: [String], command: String = "serve") throws {
        process.executableURL = URL(fileURLWithPath: BuiltTools.snapfs)
        process.arguments = [command] + args + ["--quiet"]
        let out = Pipe()
        process.standardOutput = out
        process.standardError = stderrPipe
        try process.run()
        // The first line says where it listens; EOF first means it exited.
        var buffer = Data()
        let handle = out.fileHandleForReading
        while !buffer.contains(UInt8(ascii: "\n")) {
            let chunk = handle.availableData
            if chunk.isEmpty { break }
            buffer.append(chunk)
        }
        let lineText = String(decoding: buffer, as: UTF8.self)
        guard let range = lineText.range(of: "http://") else {
            process.waitUntilExit()
            let err = String(decoding: stderrPipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            throw Failure(description: "snapfs serve did not start (status \(process.terminationStatus)): \(lineText) \(err)")
        }
        base = String(lineText[range.lowerBound...].prefix { !$0.isWhitespace })
    }

    struct Failure: Error, CustomStringConvertible { var description: String }

    func stop() {
        if process.isRunning { process.terminate() }
        process.waitUntilExit()
    }

    deinit { stop() }
}

/// One real HTTP request with curl: the status and the body.
struct HTTPAnswer {
    var status: Int
    var body: String
    var json: Any? { try? JSONSerialization.jsonObject(with: Data(body.utf8)) }
    var object: [String: Any] { json as? [String: Any] ?? [:] }
}

func curl(_ method: String, _ url: String, json: String? = nil, headers: [String] = []) throws -> HTTPAnswer {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    var args = ["curl", "-sS", "-o", "-", "-w", "\n%{http_code}", "-X", method, "--max-time", "120"]
    for h in headers { args += ["-H", h] }
    if let json { args += ["-H", "Content-Type: application/json", "--data-binary", json] }
    p.arguments = args + [url]
    let out = Pipe()
    p.standardOutput = out
    try p.run()
    let data = out.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    let text = String(decoding: data, as: UTF8.self)
    guard let nl = text.lastIndex(of: "\n"), let status = Int(text[text.index(after: nl)...]) else {
        throw ServedStore.Failure(description: "curl \(method) \(url) gave no status: \(text)")
    }
    return HTTPAnswer(status: status, body: String(text[..<nl]))
}

/// Runs `snapfs ARGS` to completion.
@discardableResult
func snapfs(_ args: String...) throws -> (status: Int32, out: String, err: String) {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: BuiltTools.snapfs)
    p.arguments = args
    let out = Pipe(), err = Pipe()
    p.standardOutput = out
    p.standardError = err
    try p.run()
    let o = out.fileHandleForReading.readDataToEndOfFile()
    let e = err.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    return (p.terminationStatus, String(decoding: o, as: UTF8.self), String(decoding: e, as: UTF8.self))
}

/// Runs a program (a user's `touch`, `rm`) to completion; its exit status.
func runProgram(_ program: String, _ args: [String]) throws -> Int32 {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: program)
    p.arguments = args
    p.standardOutput = FileHandle.nullDevice
    p.standardError = FileHandle.nullDevice
    try p.run()
    p.waitUntilExit()
    return p.terminationStatus
}

/// The value of one Prometheus sample, e.g. `snapfs_snapshots_taken_total{source="rest"}`; nil when absent.
func metric(_ text: String, _ sample: String) -> Double? {
    for line in text.split(separator: "\n") where line.hasPrefix(sample + " ") {
        return Double(line.dropFirst(sample.count + 1))
    }
    return nil
}

/// A scratch directory removed after the test.
final class Scratch {
    let root: URL
    init() throws {
        root = URL(fileURLWithPath: NSTemporaryDirectory()).appendingPathComponent("snapfs-api-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
    }
    deinit { try? FileManager.default.removeItem(at: root) }
    func path(_ p: String) -> String { root.appendingPathComponent(p).path }

    /// A local store over a small state directory.
    func localStore() throws -> String {
        let state = path("state"), store = path("store")
        try FileManager.default.createDirectory(atPath: state + "/sub", withIntermediateDirectories: true)
        try Data("alpha\n".utf8).write(to: URL(fileURLWithPath: state + "/a.txt"))
        try Data(repeating: 7, count: 100_000).write(to: URL(fileURLWithPath: state + "/sub/b.bin"))
        let r = try snapfs("init", store, "--state", state)
        guard r.status == 0 else { throw ServedStore.Failure(description: "init: \(r.err)") }
        return store
    }
}
