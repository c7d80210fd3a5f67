import Foundation
import SnapStore
import XCTest

/// Real SIGKILLs of a process churning a store: after each, reopening finishes or rolls back what it was doing.
final class CrashTests: XCTestCase {
    /// At least 100 kills (SNAPFS_CRASH_KILLS for more).
    func testSIGKILLAtRandomInstantsLosesNothing() throws {
        let kills = Int(ProcessInfo.processInfo.environment["SNAPFS_CRASH_KILLS"] ?? "") ?? 100
        let s = try Scratch()
        let state = s.path("state"), store = s.path("store"), expect = s.path("expect")
        try FileManager.default.createDirectory(atPath: state, withIntermediateDirectories: true)
        _ = try SnapFSTool.ok(["init", store, "--state", state])
        var killedMidWay = 0
        var checkedSnapshots = 0
        for round in 1...kills {
            let p = Process()
            p.executableURL = SnapFSTool.executable
            p.arguments = ["stress", store, "--seed", String(round), "--expect", expect]
            p.standardOutput = FileHandle.nullDevice
            p.standardError = FileHandle.nullDevice
            try p.run()
            usleep(UInt32.random(in: 30_000...400_000))
            if p.isRunning { killedMidWay += 1 }
            kill(p.processIdentifier, SIGKILL)
            p.waitUntilExit()

            // Reopening (here: `snapfs verify`) completes or rolls back the interrupted operation.
            let v = try SnapFSTool.run(["verify", store, "--json"])
            XCTAssertEqual(v.status, 0, "round \(round): \(v.stdout) \(v.stderr)")
            let report = try JSONDecoder().decode(VerifyReport.self, from: Data(v.stdout.utf8))
            XCTAssertEqual(report.problems, [], "round \(round)")
            XCTAssertEqual(report.unreferenced, [], "round \(round): no file leaked")
            XCTAssertEqual(report.pendingRemovals, 0, "round \(round)")

            // No remaining snapshot lost a byte of the state it captured.
            let opened = try Store.open(at: URL(fileURLWithPath: store))
            for snap in try opened.snapshots() {
                guard let data = FileManager.default.contents(atPath: "\(expect)/\(snap.id).json") else { continue }
                let want = try JSONDecoder().decode([String: String].self, from: data)
                var got: [String: String] = [:]
                for e in try opened.entries(of: snap.id) where e.type == .file {
                    got[e.path] = Store.sha256(ofFile: opened.url(ofObjectPath: e.objectPath!).path)
                }
                XCTAssertEqual(got, want, "round \(round): \(snap.name)")
                checkedSnapshots += 1
            }
            XCTAssertEqual(try opened.snapshots(includingWriting: true).filter { $0.state != .complete }.count, 0,
                           "round \(round): no half-written snapshot survives")
            if testRun?.failureCount ?? 0 > 0 { break }
        }
        XCTAssertGreaterThanOrEqual(killedMidWay, kills * 9 / 10, "the process was killed while working, not after it finished")
        XCTAssertGreaterThan(checkedSnapshots, kills, "snapshots were checked against their captured state")
        print("crash test: \(kills) SIGKILLs, \(killedMidWay) mid-operation, \(checkedSnapshots) snapshot checks")
    }
}
