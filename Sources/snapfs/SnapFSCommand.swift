import ArgumentParser
import Foundation
import FlinkEngine
import Logging
import SnapStore

@main
struct SnapFS: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "snapfs",
        abstract: "Mount a stream job's snapshot store as a directory; delete and move snapshots safely.",
        discussion: """
        Exit codes: 0 success; 1 usage or unexpected error; 2 bad input (label, format, path); 3 no such snapshot;
        4 already exists; 5 busy (held, recovery point, being written, operation in flight, store served by another daemon);
        6 not permitted; 7 store damaged; 8 snapshot or I/O failure; 10 verify found problems.
        """,
        version: "0.1.0",
        subcommands: [
            InitCommand.self, ListCommand.self, ShowCommand.self, TriggerCommand.self, DeleteCommand.self,
            MoveCommand.self, HoldCommand.self, ReleaseCommand.self, PruneCommand.self, ConvertCommand.self, RepairCommand.self, ExportCommand.self, ImportCommand.self, VerifyCommand.self,
            GCCommand.self, RefreshCommand.self, FormatsCommand.self, StatusCommand.self, EventsCommand.self, MountCommand.self, ServeCommand.self, JobCommand.self,
            DemoCommand.self, StressCommand.self, BenchPopulateCommand.self, BenchFlinkPopulateCommand.self, BenchFlinkRefreshCommand.self,
        ]
    )
}

/// Options every store command takes.
struct StoreOptions: ParsableArguments {
    @Argument(help: "The store directory (for a store on S3: the directory its catalog is in, or s3://BUCKET/PREFIX for the default one).")
    var store: String

    @Flag(name: .shortAndLong, help: "Log what happens (to stderr).")
    var verbose = false

    /// Opens the store with its engine's rules bound (for Flink: every job's recovery point, from one look at the
    /// JobManager if one is configured) and, unless `refresh` is false, catches a Flink store up with what Flink
    /// wrote or removed since the last command.
    func open(refresh: Bool = true) throws -> Store {
        CLI.bootstrapLogging(verbose: verbose)
        return try CLI.run { () throws(StoreError) in
            let s = try EngineRegistry.open(try EngineRegistry.storeURL(store))
            if s.engineName == FlinkStoreSettings.engineName {
                let engine = try FlinkEngine.forStore(s)
                if refresh && !s.isReadOnly { try engine.importer.refresh() }
            }
            return s
        }
    }
}

enum CLI {
    /// Runs a store call, turning its typed error into a message on stderr and the documented exit code.
    static func run<T>(_ body: () throws(StoreError) -> T) throws -> T {
        do { return try body() } catch {
            fail(error)
            throw ExitCode(error.exitCode)
        }
    }

    static func fail(_ error: StoreError) {
        FileHandle.standardError.write(Data("snapfs: \(error)\n".utf8))
    }

    static func printJSON<T: Encodable>(_ value: T) {
        let enc = JSONEncoder()
        enc.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        if let d = try? enc.encode(value) { print(String(decoding: d, as: UTF8.self)) }
    }

    nonisolated(unsafe) private static var loggingReady = false

    static func bootstrapLogging(verbose: Bool) {
        guard !loggingReady else { return }
        loggingReady = true
        let level: Logger.Level = verbose ? .info : (ProcessInfo.processInfo.environment["SNAPFS_LOG"].flatMap(Logger.Level.init(rawValue:)) ?? .error)
        LoggingSystem.bootstrap { label in
            var h = StreamLogHandler.standardError(label: label)
            h.logLevel = level
            return h
        }
    }

    static func date(_ t: Double?) -> String {
        guard let t else { return "-" }
        let f = DateFormatter()
        f.dateFormat = "yyyy-MM-dd HH:mm:ss"
        f.timeZone = TimeZone(identifier: "UTC")
        return f.string(from: Date(timeIntervalSince1970: t))
    }

    static func bytes(_ n: Int64) -> String {
        let units = ["B", "KiB", "MiB", "GiB", "TiB"]
        var v = Double(n), i = 0
        while v >= 1024 && i < units.count - 1 { v /= 1024; i += 1 }
        return i == 0 ? "\(n) B" : String(format: "%.1f %@", v, units[i])
    }
}

/// A one-line progress display on a terminal; silent when stderr is not one (CI, pipes).
final class TerminalProgress: @unchecked Sendable {
    private let enabled = isatty(2) != 0
    private var last = Date.distantPast
    private let lock = NSLock()
    let title: String

    init(_ title: String) { self.title = title }

    var handler: ProgressHandler? {
        guard enabled else { return nil }
        return { [self] done, total, what in
            lock.lock(); defer { lock.unlock() }
            let now = Date()
            guard now.timeIntervalSince(last) > 0.1 || done == total else { return }
            last = now
            let pct = total > 0 ? Int(Double(done) / Double(total) * 100) : 100
            let name = what.count > 40 ? "…" + what.suffix(39) : what
            FileHandle.standardError.write(Data("\r\u{1B}[2K\(title): \(pct)% \(CLI.bytes(done))/\(CLI.bytes(total)) \(name)".utf8))
        }
    }

    func finish() {
        if enabled { FileHandle.standardError.write(Data("\r\u{1B}[2K".utf8)) }
    }
}
