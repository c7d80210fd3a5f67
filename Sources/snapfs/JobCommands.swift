import ArgumentParser
import FlinkEngine
import Foundation
import SnapStore

struct JobCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "job", abstract: "Flink stores: a job's state, parallelism and recovery point.",
        subcommands: [JobStatusCommand.self])
}

struct JobStatusCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status",
        abstract: "A Flink job's state, parallelism (from the JobManager) and recovery point.")
    @OptionGroup var options: StoreOptions
    @Argument(help: "The job's id, or an unambiguous prefix of it (snapshot names carry six characters).") var job: String
    @Flag(help: "Print JSON.") var json = false

    func run() throws {
        let store = try options.open()
        guard store.engineName == FlinkStoreSettings.engineName else {
            CLI.fail(.badInput("job status applies to Flink stores; this one uses engine '\(store.engineName)'")); throw ExitCode(2)
        }
        let st = try CLI.run { () throws(StoreError) in try FlinkEngine.forStore(store).jobStatus(job) }
        if json { CLI.printJSON(st); return }
        print("""
        job:             \(st.job)
        state:           \(st.state)
        parallelism:     \(st.parallelism.map(String.init) ?? "unknown (\(st.parallelismUnknown ?? "-"))")
        recovery point:  \(st.recoveryPoint ?? "-")\(st.protected ? " (protected)" : "")
        newest:          \(st.newest ?? "-")
        detail:          \(st.detail)
        """)
    }
}
