import ArgumentParser
import FlinkEngine
import Foundation
import SnapAPI
import SnapStore

struct JobCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "job", abstract: "Flink stores: a job's state, and the intents rescale, restart, stop and upgrade.",
        subcommands: [JobStatusCommand.self, JobRescaleCommand.self, JobRestartCommand.self, JobStopCommand.self,
                      JobUpgradeCommand.self, JobJarCommand.self])
}

/// What every job subcommand shares: the store, which must be a Flink store, and the job.
struct JobOptions: ParsableArguments {
    @OptionGroup var store: StoreOptions
    @Argument(help: "The job's id, or an unambiguous prefix of it (snapshot names carry six characters).") var job: String
    @Flag(help: "Print JSON.") var json = false

    func engine(_ what: String) throws -> FlinkEngine {
        let s = try store.open()
        guard s.engineName == FlinkStoreSettings.engineName else {
            CLI.fail(.badInput("job \(what) applies to Flink stores; this one uses engine '\(s.engineName)'")); throw ExitCode(2)
        }
        return try CLI.run { () throws(StoreError) in try FlinkEngine.forStore(s) }
    }

    /// Runs an intent and prints its record; a failure prints the step, Flink's reason and where the job was left.
    func runIntent(_ what: String, _ body: (JobIntents) throws(StoreError) -> IntentRecord) throws {
        let engine = try engine(what)
        let record: IntentRecord
        do {
            let intents = try JobIntents(engine: engine)
            record = try body(intents)
        } catch {
            CLI.fail(error)
            throw ExitCode(error.exitCode)
        }
        if json { CLI.printJSON(record); return }
        print(record.message)
        for step in record.steps { print("  " + step.name.padding(toLength: 56, withPad: " ", startingAt: 0) + String(format: " %8.3f s", step.seconds)) }
    }
}

struct JobStatusCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status",
        abstract: "A Flink job's state, parallelism (from the JobManager), recovery point and last intent.")
    @OptionGroup var options: JobOptions

    func run() throws {
        let engine = try options.engine("status")
        let st = try CLI.run { () throws(StoreError) in try engine.jobStatus(options.job) }
        if options.json { CLI.printJSON(st); return }
        print("""
        job:             \(st.job)
        state:           \(st.state)
        parallelism:     \(st.parallelism.map(String.init) ?? "unknown (\(st.parallelismUnknown ?? "-"))")
        recovery point:  \(st.recoveryPoint ?? "-")\(st.protected ? " (protected)" : "")
        newest:          \(st.newest ?? "-")
        detail:          \(st.detail)
        last intent:     \(st.lastIntent.map { "\($0.intent) \($0.arguments): \($0.outcome) (\($0.message))" } ?? "-")
        """)
    }
}

/// `--jar`, `--entry-class` and `--arg`, for the intents that may start the job again.
struct JarOptions: ParsableArguments {
    @Option(help: "The job's jar: a jar file to upload, or the id of a jar uploaded to the cluster (recorded for the job).")
    var jar: String?
    @Option(name: .customLong("entry-class"), help: "The jar's main class, when its manifest names none.")
    var entryClass: String?
    @Option(name: .customLong("arg"), help: "A program argument (repeat for several).")
    var args: [String] = []

    var spec: JarSpec? {
        jar.map { JarSpec(jar: $0, entryClass: entryClass, programArgs: args.isEmpty ? nil : args) }
    }
}

struct JobRescaleCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rescale",
        abstract: "Run the job at parallelism N: through the adaptive scheduler where it runs under it, otherwise stopped with a native savepoint and started from it at N.",
        discussion: "Returns once the job runs at N. A job started again gets a new id, printed and recorded.")
    @OptionGroup var options: JobOptions
    @Argument(help: "The parallelism to run at.") var parallelism: Int
    @OptionGroup var jar: JarOptions

    func run() throws {
        try options.runIntent("rescale") { (i: JobIntents) throws(StoreError) in try i.rescale(options.job, to: parallelism, jar: jar.spec) }
    }
}

struct JobRestartCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "restart",
        abstract: "Start the job from a snapshot of the store (a running job is first stopped with a native savepoint).")
    @OptionGroup var options: JobOptions
    @Option(help: "The snapshot to start from (its name in the store).") var from: String
    @Option(help: "The parallelism to run at (default: the job's own).") var parallelism: Int?
    @Option(name: .customLong("claim-mode"), help: "no-claim (default) or claim: whether Flink takes ownership of the snapshot.")
    var claimMode = "no-claim"
    @OptionGroup var jar: JarOptions

    func run() throws {
        try options.runIntent("restart") { (i: JobIntents) throws(StoreError) in
            try i.restart(options.job, from: from, parallelism: parallelism, claimMode: claimMode, jar: jar.spec)
        }
    }
}

struct JobStopCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "stop",
        abstract: "Stop the job with a savepoint, recorded in the store as a user-induced snapshot.")
    @OptionGroup var options: JobOptions
    @Option(help: "canonical (default; portable across state backends) or native (faster).") var format = "canonical"

    func run() throws {
        try options.runIntent("stop") { (i: JobIntents) throws(StoreError) in try i.stop(options.job, format: format) }
    }
}

struct JobUpgradeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "upgrade",
        abstract: "Stop the job with a native savepoint and start the new jar from it; a failed start goes back to the old jar.")
    @OptionGroup var options: JobOptions
    @Option(help: "The new jar: a jar file to upload, or the id of a jar uploaded to the cluster.") var jar: String
    @Option(name: .customLong("entry-class"), help: "The new jar's main class (default: the job's).") var entryClass: String?
    @Option(name: .customLong("arg"), help: "A program argument (repeat for several; default: the job's).") var args: [String] = []
    @Option(help: "The parallelism to run at (default: the job's own).") var parallelism: Int?

    func run() throws {
        let spec = JarSpec(jar: jar, entryClass: entryClass, programArgs: args.isEmpty ? nil : args)
        try options.runIntent("upgrade") { (i: JobIntents) throws(StoreError) in try i.upgrade(options.job, jar: spec, parallelism: parallelism) }
    }
}

struct JobJarCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "jar",
        abstract: "Show or record the jar a job runs from (needed to start it again: rescale without the adaptive scheduler, restart).")
    @OptionGroup var options: JobOptions
    @OptionGroup var jar: JarOptions

    func run() throws {
        let engine = try options.engine("jar")
        let record = try CLI.run { () throws(StoreError) -> JobJar? in
            let intents = try JobIntents(engine: engine)
            if let spec = jar.spec { return try intents.recordJar(options.job, spec) }
            return try intents.jar(of: options.job)
        }
        guard let record else {
            if options.json { print("null") } else { print("no jar recorded for job \(options.job): record one with --jar JAR") }
            return
        }
        if options.json { CLI.printJSON(record); return }
        print("jar:          \(record.jarID)")
        print("uploaded from: \(record.path ?? "-")")
        print("entry class:  \(record.entryClass ?? "-")")
        print("arguments:    \(record.programArgs.isEmpty ? "-" : record.programArgs.joined(separator: " "))")
    }
}

/// The REST API's intents, carried out by the same `JobIntents` as the commands above.
enum JobIntentCall {
    static func run(_ request: StoreAccess.JobIntentRequest, job: String, engine: FlinkEngine) throws(StoreError) -> IntentRecord {
        let intents = try JobIntents(engine: engine)
        switch request {
        case .rescale(let p, let jar, let entry):
            return try intents.rescale(job, to: p, jar: jar.map { JarSpec(jar: $0, entryClass: entry) })
        case .restart(let from, let p, let claim, let jar, let entry):
            return try intents.restart(job, from: from, parallelism: p, claimMode: claim ?? "no-claim",
                                       jar: jar.map { JarSpec(jar: $0, entryClass: entry) })
        case .stop(let format):
            return try intents.stop(job, format: format ?? "canonical")
        case .upgrade(let jar, let entry, let p):
            return try intents.upgrade(job, jar: JarSpec(jar: jar, entryClass: entry), parallelism: p)
        }
    }
}
