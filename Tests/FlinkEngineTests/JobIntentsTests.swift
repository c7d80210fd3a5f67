@testable import FlinkEngine
import FlinkFixtures
import Foundation
import SnapStore
import Synchronization
import XCTest

/// A Flink store (a copy of fixture store 2) whose JobManager is a `FakeJobManager`: its running job is the job of
/// chk-15…17, a stop-with-savepoint copies a real savepoint of the fixtures into the store as Flink would write it.
final class IntentWorkspace {
    let w: FlinkWorkspace
    let fake: FakeFlink
    let manager: FakeJobManager
    let job: String
    let engine: FlinkEngine
    let jarFile: URL

    init(adaptive: Bool = false, parallelism: Int = 1) throws {
        let root = Mutex<URL?>(nil)
        let job = "e91e7d6dd164333d641e1dc4652079b3"
        let cluster = FakeCluster(writtenAt: FlinkFixtures.writtenAt, jobs: [job: .init(state: "RUNNING")])
        manager = FakeJobManager(cluster: cluster, adaptive: adaptive) { job, format in
            let name = "savepoint-\(job.prefix(6))-\(UUID().uuidString.replacingOccurrences(of: "-", with: "").lowercased().prefix(12))"
            guard let base = root.withLock({ $0 }) else { return "file:/nowhere" }
            // A real savepoint of the fixtures, in the format asked for.
            let source = format == "NATIVE" ? "savepoints/savepoint-921f15-e02738e55fb2" : "savepoints/savepoint-921f15-e22a4d450b0c"
            // Complete before it appears under its name, as Flink's `_metadata` is written last.
            try? FileManager.default.copyItem(at: base.appendingPathComponent(source), to: base.appendingPathComponent("savepoints/.\(name)"))
            _ = rename(base.appendingPathComponent("savepoints/.\(name)").path, base.appendingPathComponent("savepoints/\(name)").path)
            return "\(FlinkFixtures.writtenAt)/savepoints/\(name)"
        }
        manager.parallelism.withLock { $0[job] = parallelism }
        let server = try manager.serve()
        let workspace = try FlinkWorkspace(store: 2, rest: server.url)
        root.withLock { $0 = workspace.root }
        try workspace.importer.refresh()
        workspace.askCluster()
        let jar = workspace.root.deletingLastPathComponent().appendingPathComponent("statejob-\(UUID().uuidString).jar")
        try Data("PK fake jar".utf8).write(to: jar)
        fake = server
        w = workspace
        self.job = job
        engine = try FlinkEngine.forStore(workspace.store)
        jarFile = jar
    }

    deinit {
        fake.stop()
        try? FileManager.default.removeItem(at: jarFile)
    }

    func intents(runningTimeout: Double = 10) throws -> JobIntents {
        try JobIntents(engine: engine, runningTimeout: runningTimeout, pollInterval: 0.05)
    }

    func state(_ j: String) -> String? { manager.cluster.jobs.withLock { $0[j]?.state } }
    func held() throws -> [String] { try w.store.snapshots().filter { (try? w.store.hold(of: $0.name)) ?? nil != nil }.map(\.name) }
}

final class JobIntentsTests: XCTestCase {
    func testRescaleWithoutTheAdaptiveSchedulerStopsWithANativeSavepointAndStartsFromItAtN() throws {
        let x = try IntentWorkspace(parallelism: 1)
        let intents = try x.intents()
        let jar = try intents.recordJar(String(x.job.prefix(6)), JarSpec(jar: x.jarFile.path, entryClass: "demo.StateJob"))
        XCTAssertEqual(jar.path, x.jarFile.path)
        XCTAssertEqual(x.manager.jars.withLock { $0 }, [jar.jarID], "the file was uploaded")

        let r = try intents.rescale(x.job, to: 4)
        XCTAssertEqual(r.outcome, "succeeded")
        XCTAssertEqual(r.method, "savepoint")
        XCTAssertEqual(x.manager.stops.withLock { $0.map(\.format) }, ["NATIVE"])
        XCTAssertEqual(x.state(x.job), "FINISHED")
        let newJob = try XCTUnwrap(r.newJob)
        XCTAssertEqual(x.state(newJob), "RUNNING")
        XCTAssertEqual(x.manager.parallelism.withLock { $0[newJob] }, 4)
        XCTAssertEqual(r.parallelism, 4)
        let run = try XCTUnwrap(x.manager.runs.withLock { $0.last })
        XCTAssertEqual(run.jar, jar.jarID)
        XCTAssertEqual(run.entryClass, "demo.StateJob")
        XCTAssertEqual(run.claimMode, "NO_CLAIM")
        // The savepoint is a user-induced snapshot of the store, the one the new job started from, and no longer held.
        let name = try XCTUnwrap(r.snapshot)
        let s = try x.w.store.snapshot(named: name)
        XCTAssertEqual(s.kind, .user)
        XCTAssertEqual(s.job, x.job)
        XCTAssertTrue(run.savepointPath?.hasSuffix("/" + s.directory!) ?? false, "\(run) \(s)")
        XCTAssertEqual(try x.held(), [])
        XCTAssertEqual(r.steps.map(\.name).first, "read the job's state")
        XCTAssertTrue(r.steps.map(\.name).contains("stop with a NATIVE savepoint"), "\(r.steps)")
        // The last intent is recorded for the job and the job it became; the jar goes with the new job.
        XCTAssertEqual(try x.engine.jobStatus(x.job).lastIntent?.outcome, "succeeded")
        XCTAssertEqual(try x.engine.jobStatus(x.job).lastIntent?.newJob, newJob)
        XCTAssertEqual(try intents.jar(of: newJob)?.jarID, jar.jarID)
        // Again from the new job: the recorded jar is used.
        let again = try intents.rescale(newJob, to: 2)
        XCTAssertEqual(again.parallelism, 2)
        XCTAssertEqual(x.manager.runs.withLock { $0.count }, 2)
        // A job neither the cluster (a new one) nor the store knows any more is still named by its full id, as a
        // failed intent's `restart --from` names it.
        x.manager.cluster.jobs.withLock { $0[newJob] = nil }
        x.w.askCluster()
        XCTAssertEqual(try intents.resolveJob(newJob), newJob)
        XCTAssertEqual(try x.engine.jobStatus(newJob).lastIntent?.newJob, again.newJob)
        XCTAssertThrowsError(try intents.resolveJob(String(newJob.prefix(6))), "a prefix names only a job the store or cluster knows")
    }

    func testRescaleUnderTheAdaptiveSchedulerSetsResourceRequirementsAndNeedsNoJar() throws {
        let x = try IntentWorkspace(adaptive: true, parallelism: 1)
        let r = try x.intents().rescale(x.job, to: 3)
        XCTAssertEqual(r.method, "adaptive")
        XCTAssertEqual(r.parallelism, 3)
        XCTAssertNil(r.newJob)
        XCTAssertNil(r.snapshot)
        XCTAssertEqual(x.manager.parallelism.withLock { $0[x.job] }, 3)
        XCTAssertTrue(x.manager.stops.withLock { $0.isEmpty })
        XCTAssertTrue(x.fake.seen.contains("PUT /jobs/\(x.job)/resource-requirements"), "\(x.fake.seen)")
        // Already at 3: nothing to do.
        let same = try x.intents().rescale(x.job, to: 3)
        XCTAssertTrue(same.message.contains("already runs at parallelism 3"), same.message)
    }

    func testAdaptiveRescaleThatNeverGetsTheSlotsFailsAndLeavesTheJobRunning() throws {
        let x = try IntentWorkspace(adaptive: true, parallelism: 1)
        x.manager.faults.withLock { $0.adaptiveStuck = true }
        XCTAssertThrowsError(try x.intents(runningTimeout: 0.5).rescale(x.job, to: 8)) { e in
            let why = (e as? StoreError)?.description ?? "\(e)"
            XCTAssertEqual((e as? StoreError)?.exitCode, 8)
            XCTAssertTrue(why.hasPrefix("rescale of job \(x.job) failed at step 'wait until the job runs at parallelism 8'"),
                          "a failed intent is not reported as a failed snapshot: \(why)")
            XCTAssertTrue(why.contains("keeps running"), why)
        }
        XCTAssertEqual(x.state(x.job), "RUNNING")
        XCTAssertEqual(try x.engine.jobStatus(x.job).lastIntent?.outcome, "failed")
    }

    func testWithoutAJarTheRescaleIsRefusedBeforeTheJobIsTouched() throws {
        let x = try IntentWorkspace()
        XCTAssertThrowsError(try x.intents().rescale(x.job, to: 2)) { e in
            guard case .badInput(let why)? = e as? StoreError else { return XCTFail("\(e)") }
            XCTAssertTrue(why.contains("SnapFS has no jar for job \(x.job)") && why.contains("--jar JAR"), why)
        }
        XCTAssertTrue(x.manager.stops.withLock { $0.isEmpty })
        XCTAssertEqual(x.state(x.job), "RUNNING")
        // A jar id the cluster does not have, and a path that is no file, are refused by name.
        XCTAssertThrowsError(try x.intents().rescale(x.job, to: 2, jar: JarSpec(jar: "nope_job.jar"))) { e in
            XCTAssertTrue("\(e)".contains("neither a file here nor a jar uploaded to the cluster"), "\(e)")
        }
        XCTAssertThrowsError(try x.intents().recordJar(x.job, JarSpec(jar: "/no/such/file.jar"))) { e in
            XCTAssertEqual((e as? StoreError)?.exitCode, 2)
        }
        XCTAssertThrowsError(try x.intents().rescale(x.job, to: 0)) { XCTAssertEqual(($0 as? StoreError)?.exitCode, 2) }
        XCTAssertThrowsError(try x.intents().rescale("ffffff", to: 2)) { e in
            XCTAssertTrue("\(e)".contains("no job 'ffffff'"), "\(e)")
        }
        XCTAssertEqual(x.state(x.job), "RUNNING")
    }

    func testAJarTheClusterForgotIsUploadedAgainFromItsFile() throws {
        let x = try IntentWorkspace()
        let intents = try x.intents()
        let first = try intents.recordJar(x.job, JarSpec(jar: x.jarFile.path))
        x.manager.jars.withLock { $0.removeAll() }  // the JobManager restarted
        let r = try intents.rescale(x.job, to: 2)
        let used = try XCTUnwrap(x.manager.runs.withLock { $0.last?.jar })
        XCTAssertNotEqual(used, first.jarID)
        XCTAssertEqual(try intents.jar(of: try XCTUnwrap(r.newJob))?.jarID, used)
    }

    func testAFailedSavepointLeavesTheJobRunningAndNamesTheStepAndFlinksReason() throws {
        let x = try IntentWorkspace()
        let intents = try x.intents()
        _ = try intents.recordJar(x.job, JarSpec(jar: x.jarFile.path))
        x.manager.faults.withLock { $0.savepointFails = "org.apache.flink.runtime.checkpoint.CheckpointException: Checkpoint expired before completing." }
        XCTAssertThrowsError(try intents.rescale(x.job, to: 2)) { e in
            let why = "\(e)"
            XCTAssertTrue(why.contains("failed at step 'stop with a NATIVE savepoint'"), why)
            XCTAssertTrue(why.contains("Checkpoint expired before completing"), why)
            XCTAssertTrue(why.contains("the job is still RUNNING"), why)
        }
        XCTAssertEqual(x.state(x.job), "RUNNING")
        XCTAssertTrue(x.manager.runs.withLock { $0.isEmpty })
        let last = try XCTUnwrap(x.engine.jobStatus(x.job).lastIntent)
        XCTAssertEqual(last.outcome, "failed")
        XCTAssertEqual(last.failedStep, "stop with a NATIVE savepoint")
    }

    func testARefusedStartGoesBackToTheSavepointJustTakenAtTheOldParallelism() throws {
        let x = try IntentWorkspace(parallelism: 2)
        let intents = try x.intents()
        _ = try intents.recordJar(x.job, JarSpec(jar: x.jarFile.path))
        x.manager.faults.withLock { $0.runRefusals = 1 }
        var message = ""
        XCTAssertThrowsError(try intents.rescale(x.job, to: 6)) { message = "\($0)" }
        XCTAssertTrue(message.contains("failed at step 'submit the job'"), message)
        XCTAssertTrue(message.contains("Failed to submit job"), message)
        let runs = x.manager.runs.withLock { $0 }
        XCTAssertEqual(runs.count, 1, "the refused run is not in the list; the one going back is")
        XCTAssertEqual(runs[0].parallelism, 2)
        XCTAssertEqual(x.state(runs[0].job), "RUNNING")
        let last = try XCTUnwrap(x.engine.jobStatus(x.job).lastIntent)
        XCTAssertTrue(message.contains("started again from \(last.snapshot!) as job \(runs[0].job)"), message)
        XCTAssertEqual(last.newJob, runs[0].job)
        XCTAssertEqual(try x.held(), [], "the job runs again: nothing stays held")
    }

    func testAJobThatNeverRunsAndCannotGoBackIsLeftWithItsSavepointHeldAndRestartRecoversIt() throws {
        let x = try IntentWorkspace()
        let intents = try x.intents(runningTimeout: 0.5)
        _ = try intents.recordJar(x.job, JarSpec(jar: x.jarFile.path))
        x.manager.faults.withLock { $0.startedState = "RESTARTING" }
        var message = ""
        XCTAssertThrowsError(try intents.rescale(x.job, to: 3)) { message = "\($0)" }
        XCTAssertTrue(message.contains("failed at step 'wait until the job runs at parallelism 3'"), message)
        XCTAssertTrue(message.contains("RESTARTING"), message)
        XCTAssertTrue(message.contains("going back failed too"), message)
        let snapshot = try XCTUnwrap(x.engine.jobStatus(x.job).lastIntent?.snapshot)
        XCTAssertTrue(message.contains("`snapfs job restart \(x.job) --from \(snapshot)`"), message)
        XCTAssertEqual(try x.held(), [snapshot], "the way back stays held")
        XCTAssertTrue(x.manager.runs.withLock { $0 }.allSatisfy { x.state($0.job) == "CANCELED" }, "what it started was cancelled")
        // Once the cluster can run the job, the restart the message names recovers it and releases the hold.
        x.manager.faults.withLock { $0.startedState = nil }
        let r = try intents.restart(x.job, from: snapshot)
        XCTAssertEqual(r.outcome, "succeeded")
        XCTAssertEqual(x.state(try XCTUnwrap(r.newJob)), "RUNNING")
        XCTAssertEqual(try x.held(), [])
    }

    func testStopRecordsTheSavepointAsAUserSnapshotInTheFormatAsked() throws {
        let x = try IntentWorkspace()
        let intents = try x.intents()
        XCTAssertThrowsError(try intents.stop(x.job, format: "incremental")) { XCTAssertEqual(($0 as? StoreError)?.exitCode, 2) }
        let r = try intents.stop(x.job, format: "canonical")
        XCTAssertEqual(x.manager.stops.withLock { $0.map(\.format) }, ["CANONICAL"])
        XCTAssertEqual(x.state(x.job), "FINISHED")
        let s = try x.w.store.snapshot(named: try XCTUnwrap(r.snapshot))
        XCTAssertEqual(s.kind, .user)
        XCTAssertEqual(s.format, .canonical)
        XCTAssertEqual(try x.held(), [])
        XCTAssertTrue(r.message.contains("snapfs job restart \(x.job) --from \(s.name)"), r.message)
        // A stopped job cannot be stopped again: Flink's refusal, with the step.
        XCTAssertThrowsError(try intents.stop(x.job, format: "native")) { e in
            XCTAssertTrue("\(e)".contains("stop with a NATIVE savepoint") && "\(e)".contains("not RUNNING"), "\(e)")
        }
    }

    func testAnIntentOnAJobAnotherProcessIsChangingIsRefusedAndLeavesTheJobAlone() throws {
        let x = try IntentWorkspace()
        // Another opener of the store (a daemon beside this command line) is running an intent on the job.
        let other = try FlinkEngine.openStore(at: x.w.root)
        var held: ExclusiveLock? = try XCTUnwrap(try other.tryExclusiveLock(JobIntents.lockName(for: x.job)))
        XCTAssertNotNil(held)
        XCTAssertThrowsError(try x.intents().stop(x.job, format: "native")) { e in
            guard case .busy? = e as? StoreError else { return XCTFail("\(e)") }
            XCTAssertTrue("\(e)".contains("another snapfs process is running an intent on job \(x.job)"), "\(e)")
        }
        XCTAssertEqual(x.manager.stops.withLock { $0.count }, 0, "Flink was asked nothing")
        XCTAssertEqual(x.state(x.job), "RUNNING")
        // Once the other is done (or dies: the kernel drops the lock), the intent runs.
        held = nil
        _ = try x.intents().stop(x.job, format: "native")
        XCTAssertEqual(x.state(x.job), "FINISHED")
    }

    func testRestartFromAnOlderCheckpointStopsTheRunningJobFirstAndPassesClaimModeAndParallelism() throws {
        let x = try IntentWorkspace(parallelism: 2)
        let intents = try x.intents()
        _ = try intents.recordJar(x.job, JarSpec(jar: x.jarFile.path))
        let older = try x.w.snapshot(directory: "checkpoints/\(x.job)/chk-15")
        XCTAssertThrowsError(try intents.restart(x.job, from: older.name, claimMode: "maybe")) { XCTAssertEqual(($0 as? StoreError)?.exitCode, 2) }
        XCTAssertThrowsError(try intents.restart(x.job, from: "no-such")) { XCTAssertEqual(($0 as? StoreError)?.exitCode, 3) }
        let r = try intents.restart(x.job, from: older.name, parallelism: 1, claimMode: "claim")
        XCTAssertEqual(r.snapshot, older.name)
        XCTAssertEqual(x.manager.savepoints.withLock { $0.map(\.format) }, ["NATIVE"], "a way back first")
        XCTAssertTrue(x.manager.stops.withLock { $0.isEmpty }, "cancelled, not stopped: Flink keeps a cancelled job's checkpoints")
        XCTAssertEqual(x.state(x.job), "CANCELED")
        let run = try XCTUnwrap(x.manager.runs.withLock { $0.last })
        XCTAssertTrue(run.savepointPath?.hasSuffix("/checkpoints/\(x.job)/chk-15") ?? false, "\(run)")
        XCTAssertEqual(run.claimMode, "CLAIM")
        XCTAssertEqual(run.parallelism, 1)
        XCTAssertEqual(r.parallelism, 1)
        XCTAssertEqual(try x.held(), [])
    }

    func testUpgradeStartsTheNewJarFromANativeSavepointAndGoesBackToTheOldOneWhenRefused() throws {
        let x = try IntentWorkspace(parallelism: 2)
        let intents = try x.intents()
        let old = try intents.recordJar(x.job, JarSpec(jar: x.jarFile.path, entryClass: "demo.StateJob"))
        XCTAssertThrowsError(try intents.upgrade(x.job, jar: JarSpec(jar: "missing_job.jar"))) { XCTAssertEqual(($0 as? StoreError)?.exitCode, 2) }
        XCTAssertEqual(x.state(x.job), "RUNNING", "a bad jar is refused before the job is stopped")

        let newFile = x.jarFile.deletingLastPathComponent().appendingPathComponent("v2-\(UUID().uuidString).jar")
        try Data("PK v2".utf8).write(to: newFile)
        defer { try? FileManager.default.removeItem(at: newFile) }
        let r = try intents.upgrade(x.job, jar: JarSpec(jar: newFile.path))
        let run = try XCTUnwrap(x.manager.runs.withLock { $0.last })
        XCTAssertNotEqual(run.jar, old.jarID)
        XCTAssertEqual(run.parallelism, 2, "the job's own parallelism")
        XCTAssertEqual(run.entryClass, "demo.StateJob", "entry class inherited")
        XCTAssertEqual(x.manager.stops.withLock { $0.map(\.format) }, ["NATIVE"])
        let newJob = try XCTUnwrap(r.newJob)
        XCTAssertEqual(try intents.jar(of: newJob)?.path, newFile.path)

        // The next upgrade is refused by Flink: the job goes back to the jar it ran.
        x.manager.faults.withLock { $0.runRefusals = 1 }
        let third = x.jarFile.deletingLastPathComponent().appendingPathComponent("v3-\(UUID().uuidString).jar")
        try Data("PK v3".utf8).write(to: third)
        defer { try? FileManager.default.removeItem(at: third) }
        XCTAssertThrowsError(try intents.upgrade(newJob, jar: JarSpec(jar: third.path), parallelism: 5)) { e in
            XCTAssertTrue("\(e)".contains("failed at step 'submit the job'") && "\(e)".contains("started again from"), "\(e)")
        }
        let back = try XCTUnwrap(x.manager.runs.withLock { $0.last })
        XCTAssertEqual(back.jar, run.jar, "the jar it ran before")
        XCTAssertEqual(back.parallelism, 2)
        XCTAssertEqual(x.state(back.job), "RUNNING")
    }
}
