import CoreMetrics
import Foundation
import Logging
import SnapStore
import Synchronization

/// FLIP-47's declarative job operations: the user says the end state ("runs at parallelism 4", "runs from that
/// snapshot", "stopped with a savepoint", "runs the new jar"), and SnapFS picks the snapshot and the calls.
/// One implementation behind the command line, the REST API and the mount's control files.
///
/// Every intent keeps three promises:
/// - each snapshot it takes or starts from is a snapshot in the store, held while the intent runs (a hold it
///   did not put there is left as it was);
/// - when a step fails, the job is left running (a stop-with-savepoint Flink refuses leaves the job running), or
///   is started again from the savepoint just taken, at its old parallelism and jar; only if that too fails is it
///   left stopped, and then the savepoint stays held and the error names it and the `restart` that resumes it;
/// - the failure names the step and Flink's reason.
/// Flink gives every submission a new job id: an intent that starts the job again reports the new id, and the
/// jar and last intent are recorded for it as for the job it replaces.
public struct JobIntents: Sendable {
    public let engine: FlinkEngine
    /// Seconds a started or rescaled job may take to run (every operator RUNNING, at the asked parallelism).
    public let runningTimeout: Double
    let pollInterval: Double
    let api: FlinkREST
    let logger: Logger
    var store: Store { engine.store }
    var settings: FlinkStoreSettings { engine.settings }
    var jars: JobJarRegistry { JobJarRegistry(store: store) }
    var log: IntentLog { IntentLog(store: store) }

    /// Seconds the JobManager may fail to answer while an intent waits for a job to run.
    static let unansweredLimit: Double = 15

    /// The prefix of the reason of every hold an intent puts on a snapshot.
    static let holdPrefix = "intent "

    /// `snapfs_intents_total{intent,outcome}`: intents carried out by this process (outcome `succeeded`, `failed`).
    public static let metric = "snapfs_intents_total"

    /// Jobs with an intent in flight in this process: a second one on the same job is refused (EBUSY).
    private static let inFlight = Mutex<Set<String>>([])

    /// The store-wide lock an intent on `job` holds while it runs (`Store.tryExclusiveLock`).
    public static func lockName(for job: String) -> String {
        "intent-" + job.utf8.map { String(format: "%02x", $0) }.joined()
    }

    public init(engine: FlinkEngine, runningTimeout: Double = 180, pollInterval: Double = 0.5,
                logger: Logger = Logger(label: "snapfs.flink.intents")) throws(StoreError) {
        guard let rest = engine.settings.restURL else {
            throw .badInput("this Flink store has no JobManager to act through: create it with `snapfs init --engine flink --rest URL`")
        }
        self.engine = engine
        self.runningTimeout = runningTimeout
        self.pollInterval = pollInterval
        self.api = try FlinkREST(baseURL: rest)
        self.logger = logger
    }

    // MARK: - The intents

    /// Runs the job at `parallelism`: through the adaptive scheduler's resource requirements where the job runs
    /// under it, otherwise stopped with a NATIVE savepoint (the fastest format) and started from it at
    /// `parallelism`. Returns once the job runs at `parallelism`.
    public func rescale(_ jobName: String, to parallelism: Int, jar spec: JarSpec? = nil) throws(StoreError) -> IntentRecord {
        guard parallelism >= 1 else { throw .badInput("parallelism must be a whole number of at least 1; got \(parallelism)") }
        let job = try resolveJob(jobName)
        return try run("rescale", job, arguments: "\(parallelism)") { (r: IntentRun) throws(StoreError) in
            let details = try r.step("read the job's state") { () throws(StoreError) in try api.jobDetails(job) }
            guard details.state == "RUNNING" else {
                throw r.refuse(.badInput("job \(job) is \(details.state), not RUNNING: start it with `snapfs job restart \(job) --from SNAPSHOT --parallelism \(parallelism)`"))
            }
            if details.parallelism == parallelism {
                r.record.parallelism = parallelism
                r.record.message = "job \(job) already runs at parallelism \(parallelism)"
                return
            }
            let (requirements, refusal) = api.resourceRequirements(job)
            if let requirements {
                r.record.method = "adaptive"
                try r.step("set the resource requirements (adaptive scheduler)") { () throws(StoreError) in
                    try api.setParallelism(job, parallelism, current: requirements)
                }
                do throws(StoreError) {
                    try r.step("wait until the job runs at parallelism \(parallelism)") { () throws(StoreError) in
                        _ = try waitRunning(job, parallelism: parallelism)
                    }
                } catch {
                    r.aftermath = "the job keeps running under the adaptive scheduler, which rescales it once it has the slots"
                    throw error
                }
                r.record.parallelism = parallelism
                r.record.message = "job \(job) runs at parallelism \(parallelism) (adaptive scheduler)"
                return
            }
            r.record.method = "savepoint"
            logger.info("the job's scheduler takes no resource requirements; rescaling through a native savepoint",
                        metadata: ["job": .string(job), "why": .string(refusal ?? "-")])
            let jar = try r.step("find the job's jar") { () throws(StoreError) in try jobJar(job, spec) }
            try stopAndStart(r, job, format: "NATIVE", jar: jar, fallback: jar, parallelism: parallelism, previous: details.parallelism)
            r.record.message = "job \(job) runs at parallelism \(parallelism) as job \(r.record.newJob ?? "?"), started from \(r.record.snapshot ?? "?")"
        }
    }

    /// Starts the job from `snapshot`. A job still running is first stopped with a NATIVE savepoint, so that a
    /// failed start can go back to where it was.
    public func restart(_ jobName: String, from snapshotName: String, parallelism: Int? = nil, claimMode: String = "no-claim",
                        jar spec: JarSpec? = nil) throws(StoreError) -> IntentRecord {
        if let parallelism, parallelism < 1 { throw .badInput("parallelism must be a whole number of at least 1; got \(parallelism)") }
        let claim: String
        switch claimMode.lowercased() {
        case "no-claim", "no_claim": claim = "NO_CLAIM"
        case "claim": claim = "CLAIM"
        default: throw .badInput("claim mode '\(claimMode)' is not one of no-claim, claim")
        }
        let job = try resolveJob(jobName)
        let snapshot = try store.snapshot(named: snapshotName)
        guard snapshot.state == .complete, let directory = snapshot.directory, snapshot.engine == FlinkStoreSettings.engineName else {
            throw .badInput("\(snapshotName) is not a complete Flink snapshot in this store; a job starts only from one")
        }
        var args = "--from \(snapshotName)"
        if let parallelism { args += " --parallelism \(parallelism)" }
        if claim == "CLAIM" { args += " --claim-mode claim" }
        return try run("restart", job, arguments: args) { (r: IntentRun) throws(StoreError) in
            let jar = try r.step("find the job's jar") { () throws(StoreError) in try jobJar(job, spec) }
            try r.step("hold \(snapshotName)") { () throws(StoreError) in try r.hold(snapshotName, "restart of job \(job) starts from it") }
            r.record.snapshot = snapshotName
            let details = try? api.jobDetails(job)
            if let details, !ClusterAnswer.terminalStates.contains(details.state) {
                // Still running: a savepoint first, so that a failed start has a way back; then a cancel, not a
                // stop, since Flink discards the checkpoints of a job that FINISHED, and the snapshot to start from
                // may be one of them (RETAIN_ON_CANCELLATION keeps them).
                let previous = try takeStopSavepoint(r, job, format: "NATIVE", cancelling: true)
                r.record.snapshot = snapshotName
                try startOrGoBack(r, job, jar: jar, from: directory, claim: claim, parallelism: parallelism ?? details.parallelism,
                                  fallback: jar, back: previous, previous: details.parallelism)
            } else {
                try startOrGoBack(r, job, jar: jar, from: directory, claim: claim, parallelism: parallelism, fallback: nil, back: nil, previous: nil)
            }
            r.record.message = "job \(job) runs again from \(snapshotName) as job \(r.record.newJob ?? "?")"
                + (r.record.parallelism.map { " at parallelism \($0)" } ?? "")
        }
    }

    /// Stops the job with a savepoint (`canonical` or `native`) and records it as a user-induced snapshot.
    public func stop(_ jobName: String, format: String = "canonical") throws(StoreError) -> IntentRecord {
        let formatType: String
        switch format.lowercased() {
        case "canonical": formatType = "CANONICAL"
        case "native", "native-full": formatType = "NATIVE"
        default: throw .badInput("savepoint format '\(format)' is not one of canonical, native")
        }
        let job = try resolveJob(jobName)
        return try run("stop", job, arguments: "--format \(formatType.lowercased())") { (r: IntentRun) throws(StoreError) in
            let snapshot = try takeStopSavepoint(r, job, format: formatType)
            r.record.message = "job \(job) stopped with \(formatType) savepoint \(snapshot.name); `snapfs job restart \(job) --from \(snapshot.name)` starts it again"
        }
    }

    /// Stops the job with a NATIVE savepoint and starts `jar` from it (at `parallelism`, else the job's own). A
    /// failed start goes back to the old jar from the same savepoint.
    public func upgrade(_ jobName: String, jar spec: JarSpec, parallelism: Int? = nil) throws(StoreError) -> IntentRecord {
        if let parallelism, parallelism < 1 { throw .badInput("parallelism must be a whole number of at least 1; got \(parallelism)") }
        let job = try resolveJob(jobName)
        var args = "--jar \(spec.jar)"
        if let parallelism { args += " --parallelism \(parallelism)" }
        return try run("upgrade", job, arguments: args) { (r: IntentRun) throws(StoreError) in
            let details = try r.step("read the job's state") { () throws(StoreError) in try api.jobDetails(job) }
            guard details.state == "RUNNING" else {
                throw r.refuse(.badInput("job \(job) is \(details.state), not RUNNING: start the new jar with `snapfs job restart \(job) --from SNAPSHOT --jar \(spec.jar)`"))
            }
            let old = try jars.jar(of: job)
            let new = try r.step("upload the new jar") { () throws(StoreError) in try jars.resolve(spec, api: api, inherit: old) }
            try stopAndStart(r, job, format: "NATIVE", jar: new, fallback: old, parallelism: parallelism ?? details.parallelism,
                             previous: details.parallelism)
            r.record.message = "job \(job) runs jar \(new.jarID) as job \(r.record.newJob ?? "?"), started from \(r.record.snapshot ?? "?")"
        }
    }

    /// Records `spec` as the jar job `jobName` runs from (uploading it if it is a file); returns the record.
    public func recordJar(_ jobName: String, _ spec: JarSpec) throws(StoreError) -> JobJar {
        let job = try resolveJob(jobName)
        let jar = try jars.resolve(spec, api: api, inherit: try jars.jar(of: job))
        try jars.record(jar, for: job)
        return jar
    }

    /// The jar recorded for a job, if any.
    public func jar(of jobName: String) throws(StoreError) -> JobJar? {
        try jars.jar(of: resolveJob(jobName))
    }

    // MARK: - Steps shared by the intents

    /// Stop-with-savepoint, recorded and held. On failure, says where the job was left: Flink keeps a job running
    /// when its stop-with-savepoint fails.
    /// With `cancelling`, a savepoint is taken and the job then cancelled, instead of stopped with it.
    @discardableResult
    func takeStopSavepoint(_ r: IntentRun, _ job: String, format: String, cancelling: Bool = false) throws(StoreError) -> Snapshot {
        let location: String
        do {
            location = try r.step(cancelling ? "take a \(format) savepoint" : "stop with a \(format) savepoint") { () throws(StoreError) in
                let target = FlinkPaths.flinkLocation(ofLocal: store.root.path + "/" + settings.savepointDirectory, settings: settings)
                let request = cancelling ? try api.triggerSavepoint(job, formatType: format, targetDirectory: target)
                    : try api.stopWithSavepoint(job, formatType: format, targetDirectory: target)
                let location = try poll(cancelling ? "savepoint" : "stop-with-savepoint", timeout: settings.triggerTimeout) { () throws(StoreError) in
                    try api.savepointStatus(job, request: request)
                }
                return location
            }
        } catch {
            let state = (try? api.jobDetails(job).state) ?? "unknown (the JobManager did not answer)"
            r.aftermath = state == "RUNNING" ? "the job is still RUNNING" : "the job is \(state); no savepoint was taken"
            throw error
        }
        let snapshot: Snapshot
        do {
            snapshot = try r.step("record the savepoint") { () throws(StoreError) -> Snapshot in
                guard let directory = FlinkPaths.storeRelative(location, store: store, settings: settings) else {
                    throw .snapshotFailed("Flink wrote the savepoint outside the store, at \(location); check the path map")
                }
                let s = try engine.importer.recordDirectory(directory, name: nil)
                try r.hold(s.name, "\(r.record.intent) of job \(job) took it")
                return s
            }
        } catch {
            r.aftermath = "the job is stopped; its savepoint is at \(location) (`flink run -s \(location)` starts it again)"
            throw error
        }
        StoreMetrics.tookSnapshot(source: "intent")
        r.record.snapshot = snapshot.name
        if !cancelling {
            // Flink reports the savepoint complete a moment before the job leaves RUNNING: wait for that, so that
            // what follows (a start, a restart, a second intent) sees the job stopped.
            do {
                try r.step("wait until the job has stopped") { () throws(StoreError) in try waitEnded(job) }
            } catch {
                r.aftermath = "\(snapshot.name) stays held: `snapfs job restart \(job) --from \(snapshot.name)` starts the job from it"
                r.keepHold = snapshot.name
                throw error
            }
        }
        if cancelling {
            do {
                try r.step("cancel the job") { () throws(StoreError) in
                    try api.cancel(job)
                    let start = Date()
                    while (try? api.jobDetails(job).state) != "CANCELED" {
                        if Date().timeIntervalSince(start) > runningTimeout {
                            throw .snapshotFailed("job \(job) was not CANCELED within \(String(format: "%g", runningTimeout)) s")
                        }
                        Thread.sleep(forTimeInterval: pollInterval)
                    }
                }
            } catch {
                let state = (try? api.jobDetails(job).state) ?? "unknown (the JobManager did not answer)"
                r.aftermath = "the job is \(state)"
                throw error
            }
        }
        r.wayBack = snapshot
        return snapshot
    }

    /// Stops the job with a savepoint and starts `jar` from it; on failure goes back to `fallback` from the same
    /// savepoint.
    func stopAndStart(_ r: IntentRun, _ job: String, format: String, jar: JobJar, fallback: JobJar?, parallelism: Int?,
                      previous: Int?) throws(StoreError) {
        let savepoint = try takeStopSavepoint(r, job, format: format)
        guard let directory = savepoint.directory else { throw .corrupt("\(savepoint.name) has no directory") }
        try startOrGoBack(r, job, jar: jar, from: directory, claim: "NO_CLAIM", parallelism: parallelism,
                          fallback: fallback, back: savepoint, previous: previous)
    }

    /// Submits `jar` from `directory` and waits until it runs (at `parallelism` when given). On failure, cancels
    /// what it started and, when there is a way back (the savepoint the intent took), submits `fallback` from it
    /// at the old parallelism.
    func startOrGoBack(_ r: IntentRun, _ job: String, jar: JobJar, from directory: String, claim: String, parallelism: Int?,
                       fallback: JobJar?, back: Snapshot?, previous: Int?) throws(StoreError) {
        var started: String?
        do {
            let ready = try r.step("make the jar available") { () throws(StoreError) in try jars.ensureUploaded(jar, api: api) }
            let newJob = try r.step("submit the job") { () throws(StoreError) in
                try api.runJar(ready.jarID, .init(entryClass: ready.entryClass, programArgs: ready.programArgs, parallelism: parallelism,
                                                  savepointPath: savepointPath(directory), claimMode: claim))
            }
            started = newJob
            let running = try r.step(parallelism.map { "wait until the job runs at parallelism \($0)" } ?? "wait until the job runs") { () throws(StoreError) in
                try waitRunning(newJob, parallelism: parallelism)
            }
            r.record.newJob = newJob
            r.record.parallelism = running.parallelism
            try? jars.record(ready, for: newJob)
            if ready != jar || job != newJob { try? jars.record(ready, for: job) }
        } catch {
            if let started { try? api.cancel(started) }
            guard let back, let backDirectory = back.directory else {
                r.aftermath = started.map { "job \($0), which it started, was cancelled; the job is not running" } ?? "the job is not running"
                throw error
            }
            guard let fallback else {
                r.aftermath = "the job is stopped and SnapFS has no jar of it to go back to; \(back.name) stays held: `snapfs job restart \(job) --from \(back.name) --jar JAR` starts it again"
                r.keepHold = back.name
                throw error
            }
            var restarted: String?
            do {
                let ready = try jars.ensureUploaded(fallback, api: api)
                let again = try api.runJar(ready.jarID, .init(entryClass: ready.entryClass, programArgs: ready.programArgs, parallelism: previous,
                                                             savepointPath: savepointPath(backDirectory), claimMode: "NO_CLAIM"))
                restarted = again
                let running = try waitRunning(again, parallelism: previous)
                r.record.newJob = again
                r.record.parallelism = running.parallelism
                try? jars.record(ready, for: again)
                r.aftermath = "the job was started again from \(back.name) as job \(again)" + (running.parallelism.map { " at parallelism \($0)" } ?? "")
            } catch let second {
                if let restarted { try? api.cancel(restarted) }
                r.aftermath = "going back failed too (\(second.description)); the job is stopped and \(back.name) stays held: `snapfs job restart \(job) --from \(back.name)` starts it again"
                r.keepHold = back.name
            }
            throw error
        }
    }

    /// Where Flink reads a snapshot directory of the store from.
    func savepointPath(_ directory: String) -> String {
        FlinkPaths.flinkLocation(ofLocal: store.root.path + "/" + directory, settings: settings)
    }

    /// The jar to start the job from: the one given (uploaded if it is a file), else the one recorded.
    func jobJar(_ job: String, _ spec: JarSpec?) throws(StoreError) -> JobJar {
        let recorded = try jars.jar(of: job)
        if let spec { return try jars.resolve(spec, api: api, inherit: recorded) }
        guard let recorded else {
            throw .badInput("SnapFS has no jar for job \(job), and starting it again needs one: give it with --jar JAR (a jar file to upload, or the id of a jar uploaded to the cluster), or record it with `snapfs job jar STORE \(job) JAR`")
        }
        return recorded
    }

    /// Polls `GET /jobs/:id` until the job runs (at `parallelism` when given); fails when it ends or the time is up.
    func waitRunning(_ job: String, parallelism: Int?) throws(StoreError) -> FlinkREST.JobDetails {
        let start = Date()
        var last: FlinkREST.JobDetails?
        var lastError: StoreError?
        var failingSince: Date?
        while true {
            do {
                let d = try api.jobDetails(job)
                last = d
                failingSince = nil
                if d.isRunning, parallelism == nil || d.parallelism == parallelism { return d }
            } catch {
                lastError = error
                let since = failingSince ?? Date()
                failingSince = since
                // A JobManager that stopped answering will not report the job running: fail now, not at the timeout.
                if Date().timeIntervalSince(since) > Self.unansweredLimit {
                    throw .snapshotFailed("the JobManager stopped answering while job \(job) was starting: \(Self.reason(error))")
                }
            }
            if let d = last, ClusterAnswer.terminalStates.contains(d.state) {
                throw .snapshotFailed("Flink reports job \(job) \(d.state)\(exceptionSummary(job).map { ": \($0)" } ?? "")")
            }
            if Date().timeIntervalSince(start) > runningTimeout {
                let seen = last.map { "it is \($0.state) at parallelism \($0.parallelism.map(String.init) ?? "?")" } ?? lastError?.description ?? "no answer"
                throw .snapshotFailed("job \(job) did not run\(parallelism.map { " at parallelism \($0)" } ?? "") within \(String(format: "%g", runningTimeout)) s (\(seen))")
            }
            Thread.sleep(forTimeInterval: pollInterval)
        }
    }

    /// Polls until the job is in a terminal state (the JobManager may also have forgotten it).
    func waitEnded(_ job: String) throws(StoreError) {
        let start = Date()
        var failingSince: Date?
        while true {
            do {
                if ClusterAnswer.terminalStates.contains(try api.jobDetails(job).state) { return }
                failingSince = nil
            } catch {
                if error.description.contains("answered 404") { return }
                let since = failingSince ?? Date()
                failingSince = since
                if Date().timeIntervalSince(since) > Self.unansweredLimit {
                    throw .snapshotFailed("the savepoint is complete but the JobManager stopped answering before job \(job) stopped: \(Self.reason(error))")
                }
            }
            if Date().timeIntervalSince(start) > runningTimeout {
                throw .snapshotFailed("the savepoint is complete but job \(job) did not stop within \(String(format: "%g", runningTimeout)) s")
            }
            Thread.sleep(forTimeInterval: pollInterval)
        }
    }

    /// Flink's root exception for a job, when it gives one (`GET /jobs/:id/exceptions`).
    func exceptionSummary(_ job: String) -> String? {
        guard let answer = try? api.call("GET", "/jobs/\(job)/exceptions") else { return nil }
        if let root = answer["root-exception"] as? String { return FlinkREST.firstLine(root) }
        if let history = (answer["exceptionHistory"] as? [String: Any])?["entries"] as? [[String: Any]],
           let first = history.first?["stacktrace"] as? String { return FlinkREST.firstLine(first) }
        return nil
    }

    func poll<T: Sendable>(_ what: String, timeout: Double, _ status: () throws(StoreError) -> FlinkREST.Outcome<T>) throws(StoreError) -> T {
        try FlinkREST.awaitOutcome(what, timeout: timeout, interval: pollInterval, status)
    }

    /// A job named by its full id or an unambiguous prefix: among the store's jobs and, when the JobManager
    /// answers, the cluster's (a job an intent just started has no snapshot yet).
    public func resolveJob(_ name: String) throws(StoreError) -> String {
        var known = Set(store.jobStatus().jobs.map(\.job))
        if let live = try? api.jobsOverview() { known.formUnion(live.keys) }
        if known.contains(name) { return name }
        // A job SnapFS started or recorded a jar for, by its full id, though neither the store nor the cluster knows
        // it any more: a failed intent's `restart` on a new cluster, after Flink discarded its checkpoints.
        if (try? jars.jar(of: name)) != nil || log.last(of: name) != nil { return name }
        let matches = known.filter { !name.isEmpty && $0.hasPrefix(name.lowercased()) }
        guard matches.count == 1, let only = matches.first else {
            throw .badInput(matches.count > 1
                ? "job '\(name)' is ambiguous: it begins \(matches.count) jobs' ids (\(matches.sorted().joined(separator: ", ")))"
                : "no job '\(name)' in this store or on its cluster" + (known.isEmpty ? "" : "; its jobs: \(known.sorted().joined(separator: ", "))"))
        }
        return only
    }

    // MARK: - Running one intent

    /// Runs `body` as intent `name` on `job`: one at a time per job, recorded as the job's last intent before and
    /// after, holds released at the end (except the way back of a job left stopped), and any failure rewritten to
    /// name the step and where the job was left.
    func run(_ name: String, _ job: String, arguments: String, _ body: (IntentRun) throws(StoreError) -> Void) throws(StoreError) -> IntentRecord {
        let claimed = Self.inFlight.withLock { $0.insert(job).inserted }
        guard claimed else { throw .busy(snapshot: job, reason: "another intent is running on job \(job); wait for it") }
        defer { _ = Self.inFlight.withLock { $0.remove(job) } }
        // The same rule among processes: the daemon (a control file, REST) and the command line must not both
        // stop or start one job.
        guard let exclusive = try store.tryExclusiveLock(Self.lockName(for: job)) else {
            throw .busy(snapshot: job, reason: "another snapfs process is running an intent on job \(job); wait for it")
        }
        defer { withExtendedLifetime(exclusive) {} }
        let r = IntentRun(record: IntentRecord(intent: name, job: job, arguments: arguments, outcome: "running", method: nil, failedStep: nil,
                                               message: "\(name) \(arguments) running", snapshot: nil, newJob: nil, parallelism: nil,
                                               steps: [], startedAt: Date().timeIntervalSince1970, finishedAt: nil),
                          store: store)
        log.record(r.record, for: job)
        logger.info("intent started", metadata: ["intent": .string(name), "job": .string(job), "arguments": .string(arguments)])
        do {
            try body(r)
        } catch {
            r.releaseHolds()
            r.record.outcome = "failed"
            r.record.finishedAt = Date().timeIntervalSince1970
            Counter(label: Self.metric, dimensions: [("intent", name), ("outcome", "failed")]).increment()
            if let refusal = r.refusal {
                r.record.message = refusal.description
                log.record(r.record, for: job)
                throw refusal
            }
            r.record.failedStep = r.currentStep
            let message = "\(name) of job \(job) failed at step '\(r.currentStep ?? "-")': \(Self.reason(error))"
                + (r.aftermath.map { "; \($0)" } ?? "")
            r.record.message = message
            log.record(r.record, for: job)
            if let n = r.record.newJob, n != job { log.record(r.record, for: n) }
            logger.warning("intent failed", metadata: ["intent": .string(name), "job": .string(job), "error": .string(message)])
            switch error {
            case .badInput, .noSuchSnapshot, .alreadyExists, .busy, .locked, .notPermitted, .readOnly, .corrupt:
                // Refused before or without touching the job: the store's own error, with the step named.
                throw Self.rewrap(error, message)
            default:
                throw .operationFailed(message)
            }
        }
        r.releaseHolds()
        r.record.outcome = "succeeded"
        r.record.finishedAt = Date().timeIntervalSince1970
        Counter(label: Self.metric, dimensions: [("intent", name), ("outcome", "succeeded")]).increment()
        log.record(r.record, for: job)
        if let n = r.record.newJob, n != job { log.record(r.record, for: n) }
        _ = try? engine.importer.refresh()
        logger.info("intent succeeded", metadata: ["intent": .string(name), "job": .string(job), "message": .string(r.record.message)])
        return r.record
    }

    /// The reason inside a store error, without the "snapshot failed:" every failed Flink call carries.
    static func reason(_ e: StoreError) -> String {
        if case .snapshotFailed(let s) = e { return s }
        return e.description
    }

    static func rewrap(_ e: StoreError, _ message: String) -> StoreError {
        switch e {
        case .badInput: return .badInput(message)
        case .notPermitted: return .notPermitted(message)
        case .readOnly: return .readOnly(message)
        case .corrupt: return .corrupt(message)
        case .locked: return .locked(message)
        case .busy(let s, _): return .busy(snapshot: s, reason: message)
        default: return e
        }
    }
}

/// The state of one intent while it runs: its record, the step it is at, the holds it put, and what to say of
/// the job if it fails.
final class IntentRun: @unchecked Sendable {
    var record: IntentRecord
    let store: Store
    var currentStep: String?
    /// Where the job was left, for the failure message.
    var aftermath: String?
    /// A refusal before the job was touched: reported as is.
    var refusal: StoreError?
    /// The savepoint this intent took, the way back while the job is stopped.
    var wayBack: Snapshot?
    /// A hold that stays after the intent (the way back of a job left stopped).
    var keepHold: String?
    private var held: [String] = []

    init(record: IntentRecord, store: Store) {
        self.record = record
        self.store = store
    }

    /// Runs one step, timed and named for the failure message.
    func step<T>(_ name: String, _ body: () throws(StoreError) -> T) throws(StoreError) -> T {
        currentStep = name
        let start = Date()
        defer { record.steps.append(.init(name: name, seconds: (Date().timeIntervalSince(start) * 1000).rounded() / 1000)) }
        return try body()
    }

    func refuse(_ e: StoreError) -> StoreError {
        refusal = e
        return e
    }

    /// Holds a snapshot for the intent, unless a hold is on it already (a person's, left as it was, or a failed
    /// intent's way back, which this intent takes over and releases when it succeeds).
    func hold(_ name: String, _ why: String) throws(StoreError) {
        if let existing = try store.hold(of: name) {
            if existing.reason.hasPrefix(JobIntents.holdPrefix) { held.append(name) }
            return
        }
        try store.hold(name, reason: JobIntents.holdPrefix + why)
        held.append(name)
    }

    func releaseHolds() {
        for name in held where name != keepHold {
            _ = try? store.release(name)
        }
        if let keep = keepHold {
            _ = try? store.hold(keep, reason: JobIntents.holdPrefix + "\(record.intent) of job \(record.job) failed and left the job stopped: the way back (`snapfs job restart \(record.job) --from \(keep)`)")
        }
        held.removeAll()
    }
}
