import ArgumentParser
import FlinkEngine
import Foundation
import SnapStore

struct RepairCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "repair",
        abstract: "Flink stores: point handles Flink resolves to the wrong directory (FLINK-39964) at the files where they are.",
        discussion: """
        For a snapshot that verify calls not restorable only because its relative handles resolve against its own
        directory while the files are in another snapshot's (a checkpoint written after a CLAIM restore from a
        savepoint with relative handles). Each such handle is rewritten to the absolute path of a file of the
        right length; the original _metadata is kept as _metadata.before-repair. Refused (exit 6), naming the
        files, when any file the snapshot needs is gone.
        """)
    @OptionGroup var options: StoreOptions
    @Argument(help: "Snapshot to repair.") var name: String
    @Flag(help: "Print what would change; change nothing.") var dryRun = false
    @Flag(help: "Print JSON.") var json = false

    func run() throws {
        let store = try options.open(refresh: !dryRun)
        let engine = try makeEngine(store: store, stateOverride: nil)
        let report = try CLI.run { () throws(StoreError) -> FlinkRepairReport in
            guard let flink = engine as? FlinkEngine else {
                throw .badInput("repair is for Flink stores; this store's engine is \(store.engineName)")
            }
            return try flink.repair(name, dryRun: dryRun)
        }
        if json { CLI.printJSON(report); return }
        if report.fixes.isEmpty {
            print("\(name): nothing to repair (every file its _metadata names is where Flink looks)")
            return
        }
        for fix in report.fixes { print("  \(fix.looksAt) -> \(fix.foundAt) (\(fix.size) bytes)") }
        if report.dryRun {
            print("\(name): would rewrite \(report.fixes.count) handles in \(report.directory)/_metadata to name their files where they are (dry run: nothing changed)")
        } else {
            print("\(name): \(report.fixes.count) handles now name their files where they are; original kept as \(report.kept ?? "?")")
        }
    }
}
