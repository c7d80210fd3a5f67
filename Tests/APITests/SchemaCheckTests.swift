import BuiltTools
import Foundation
import XCTest

/// schemathesis, from PyPI, against the served OpenAPI document (`Scripts/api-check`): no 5xx, no answer that
/// breaks the document, invalid input refused. Runs where schemathesis is installed (`Scripts/install-deps` installs
/// it); in CI its absence is a failure, elsewhere a skip.
final class SchemaCheckTests: XCTestCase {
    func testSchemathesisFindsNothing() throws {
        let checkout = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let probe = Process()
        probe.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        probe.arguments = ["python3", "-m", "schemathesis.cli", "--version"]
        probe.standardOutput = FileHandle.nullDevice
        probe.standardError = FileHandle.nullDevice
        try probe.run()
        probe.waitUntilExit()
        if probe.terminationStatus != 0 {
            let message = "schemathesis is not installed (python3 -m schemathesis.cli); Scripts/install-deps installs it from PyPI"
            if ProcessInfo.processInfo.environment["CI"] != nil { XCTFail(message); return }
            throw XCTSkip(message)
        }

        let p = Process()
        p.executableURL = checkout.appendingPathComponent("Scripts/api-check")
        var env = ProcessInfo.processInfo.environment
        env["SNAPFS_BIN"] = BuiltTools.snapfs
        p.environment = env
        let out = Pipe()
        p.standardOutput = out
        p.standardError = out
        try p.run()
        let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        XCTAssertEqual(p.terminationStatus, 0, "Scripts/api-check found problems:\n\(text)")
        XCTAssertTrue(text.contains("passed"), text)
    }
}
