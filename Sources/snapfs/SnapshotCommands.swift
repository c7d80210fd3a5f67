import FlinkEngine
import ArgumentParser
import Foundation
import SnapStore

struct TriggerCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "trigger", abstract: "Take a user-induced snapshot now, in a chosen format.")
    @OptionGroup var options: StoreOptions
    @Option(help: "canonical, native-full, native-incremental or default.") var format = "default"
    @Option(help: "A name for the snapshot: 1–128 of A-Z a-z 0-9 . _ -, not starting with '.'.") var label: String?
    @Option(help: "State directory, if not the one the store was created with.") var state: String?
    @Flag(help: "Print JSON.") var json = false

    func run() throws {
        let store = try options.open()
        guard let fmt = TriggerFormat(rawValue: format) else {
            CLI.fail(.badInput("unknown format '\(format)': expected canonical, native-full, native-incremental or default"))
            throw ExitCode(2)
        }
        let engine = try makeEngine(store: store, stateOverride: state)
        let p = TerminalProgress("snapshot")
        let (req, result) = try CLI.run { () throws(StoreError) in
            try store.requestSnapshot(engine: engine, format: fmt, label: label, source: "cli", progress: p.handler)
        }
        p.finish()
        switch result {
        case .success(let s):
            if json { CLI.printJSON(req) } else { print("snapshot \(s.name) complete (\(s.format.rawValue), request \(req.seq))") }
        case .failure(let e):
            if json { CLI.printJSON(req) }
            CLI.fail(e)
            throw ExitCode(e.exitCode)
        }
    }
}

struct ConvertCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "convert", abstract: "Write a snapshot's content anew in another format (e.g. incremental → canonical).")
    @OptionGroup var options: StoreOptions
    @Argument(help: "Snapshot to convert.") var name: String
    @Option(help: "native-full or canonical; or self-contained (Flink stores: every file copied into one new savepoint directory, every handle relative to it).") var to: String
    @Option(help: "Name of the new snapshot.") var label: String?

    func run() throws {
        let store = try options.open()
        if to == "self-contained" {
            let engine = try makeEngine(store: store, stateOverride: nil)
            let s = try CLI.run { () throws(StoreError) -> Snapshot in
                guard let flink = engine as? FlinkEngine else {
                    throw .badInput("--to self-contained is for Flink stores; this store's engine is \(store.engineName)")
                }
                return try flink.convertToSelfContained(name, label: label)
            }
            print("converted \(name) to \(s.name) (self-contained, in \(s.directory ?? "?"))")
            return
        }
        let fmt = try CLI.run { () throws(StoreError) in try SnapshotFormat(userInput: to) }
        let p = TerminalProgress("convert")
        let s = try CLI.run { () throws(StoreError) in try store.convert(name, to: fmt, label: label, progress: p.handler) }
        p.finish()
        print("converted \(name) to \(s.name) (\(s.format.rawValue))")
    }
}

struct ExportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "export", abstract: "Write a snapshot as a canonical tree (files/, MANIFEST.json, SHA256SUMS) to a directory.")
    @OptionGroup var options: StoreOptions
    @Argument(help: "Snapshot to export.") var name: String
    @Argument(help: "Target directory (created; must be empty).") var directory: String

    func run() throws {
        let store = try options.open()
        let p = TerminalProgress("export")
        let m = try CLI.run { () throws(StoreError) in try store.export(name, to: URL(fileURLWithPath: directory), progress: p.handler) }
        p.finish()
        print("exported \(name): \(m.entries.count) entries to \(directory)")
    }
}

struct ImportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "import", abstract: "Bring an exported canonical snapshot into this store, checking every checksum.")
    @OptionGroup var options: StoreOptions
    @Argument(help: "Directory written by `snapfs export`.") var directory: String
    @Option(help: "Name for the imported snapshot (default: its original name if free).") var label: String?

    func run() throws {
        let store = try options.open()
        let p = TerminalProgress("import")
        let s = try CLI.run { () throws(StoreError) in try store.importCanonical(from: URL(fileURLWithPath: directory), label: label, progress: p.handler) }
        p.finish()
        print("imported \(directory) as \(s.name)")
    }
}
