import ArgumentParser
import Foundation
import FlinkEngine
import S3Client
import S3Store
import LocalEngine
import SnapStore

struct InitCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "init",
        abstract: "Create a store: for the local engine's state directory, or over an existing Flink store directory.",
        discussion: """
        local: snapfs init STORE --state DIR
        flink: snapfs init FLINK_STORE_DIR --engine flink [--rest http://HOST:PORT [--job JOB_ID]] [--path-map file:/srv/flink-store=/here]
               The catalog is created inside the Flink store directory; Flink's files stay where they are and every
               checkpoint (<dir>/<job-id>/chk-N) and savepoint (savepoint-*) below it is recorded.
        flink on S3: snapfs init s3://BUCKET/PREFIX --engine flink --endpoint URL [--region R] [--path-style] [--cache DIR]
               The catalog is created on local disk (DIR, else the default the README names; later commands take DIR
               or s3://BUCKET/PREFIX for the default); credentials come from AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY
               or ~/.aws/credentials, never from arguments.
        """)

    @Argument(help: "The store directory to create (for flink: the existing Flink store directory).") var store: String
    @Option(help: "local or flink.") var engine = "local"
    @Option(help: "local: the live state directory whose snapshots the store keeps.") var state: String?
    @Option(help: "What `default` means: native-incremental, native-full or canonical (flink: canonical unless set).") var defaultFormat: String?
    @Option(help: "local: seconds between system checkpoints while mounted (0: none).") var checkpointInterval: Double = 0
    @Option(help: "local: system checkpoints to keep; older ones are deleted through the checked path.") var retain = 5
    @Option(help: "flink: the JobManager's REST address, e.g. http://127.0.0.1:8081; every job it runs has its recovery point protected.") var rest: String?
    @Option(help: "flink: the job through which snapshots are triggered (optional; needs --rest).") var job: String?
    @Option(help: "flink: FROM=TO, where Flink wrote the store and where it is now (repeatable).") var pathMap: [String] = []
    @Option(help: "flink: where triggered savepoints go, relative to the store.") var savepointDir = "savepoints"
    @Option(help: "flink: seconds a triggered snapshot may take.") var triggerTimeout: Double = 300
    @Option(help: "flink on S3: the S3 server, e.g. https://s3.eu-west-1.amazonaws.com or http://127.0.0.1:7480.") var endpoint: String?
    @Option(help: "flink on S3: the region requests are signed for.") var region = "us-east-1"
    @Flag(help: "flink on S3: path-style addressing (http://host/bucket/key), which most S3-compatible servers need.") var pathStyle = false
    @Option(help: "flink on S3: the local directory for the catalog and the read cache (default: see README, \"S3 stores\").") var cache: String?
    @Flag(help: "flink on S3: take the prefix over from another catalog whose lock object is still there (that catalog is gone for good).") var breakLock = false

    func run() throws {
        CLI.bootstrapLogging(verbose: false)
        switch engine {
        case "local": try runLocal()
        case FlinkStoreSettings.engineName: try runFlink()
        default: CLI.fail(.badInput("unknown engine '\(engine)': expected local or flink")); throw ExitCode(2)
        }
    }

    private func runLocal() throws {
        let defaultFormat = self.defaultFormat ?? "native-incremental"
        _ = try CLI.run { () throws(StoreError) in try SnapshotFormat(userInput: defaultFormat) }
        guard retain >= 1 else { CLI.fail(.badInput("--retain must be at least 1")); throw ExitCode(2) }
        guard let state else { CLI.fail(.badInput("the local engine needs --state DIR")); throw ExitCode(2) }
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: state, isDirectory: &isDir), isDir.boolValue else {
            CLI.fail(.badInput("state directory \(state) does not exist")); throw ExitCode(2)
        }
        let stateDir = URL(fileURLWithPath: state).standardizedFileURL.path
        let s = try CLI.run { () throws(StoreError) in
            try LocalEngine.checkSeparate(state: URL(fileURLWithPath: stateDir), store: URL(fileURLWithPath: store))
            return try Store.create(at: URL(fileURLWithPath: store), engine: "local", settings: [
                "state_dir": stateDir, "default_format": defaultFormat, "job_state": "running",
                "checkpoint_interval": String(checkpointInterval), "retain": String(retain),
            ])
        }
        print("created store \(s.root.path) for state \(stateDir)")
    }

    private func runFlink() throws {
        let lower = store.lowercased()
        if lower.hasPrefix("s3://") || lower.hasPrefix("s3a://") { try runFlinkS3(); return }
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: store, isDirectory: &isDir), isDir.boolValue else {
            CLI.fail(.badInput("Flink store directory \(store) does not exist")); throw ExitCode(2)
        }
        if job != nil && rest == nil {
            CLI.fail(.badInput("--job needs --rest: the job is reached through that REST address")); throw ExitCode(2)
        }
        let report = try CLI.run { () throws(StoreError) -> (Store, FlinkImportReport) in
            let settings = FlinkStoreSettings(
                restURL: rest, jobID: job, pathMap: try pathMap.map { r throws(StoreError) in
                    // A relative TO means "relative to here", as any path a user types; the catalog keeps it absolute.
                    let rule = try FlinkStoreSettings.parsePathMapRule(r)
                    let absolute = rule.to.hasPrefix("/") || rule.to.contains(":")
                    return (rule.from, absolute ? rule.to : URL(fileURLWithPath: rule.to).standardizedFileURL.path)
                },
                savepointDirectory: savepointDir, defaultFormat: try SnapshotFormat(userInput: defaultFormat ?? "canonical"),
                triggerTimeout: triggerTimeout)
            guard Store.isSafeRelativePath(savepointDir) else { throw .badInput("--savepoint-dir must be a path inside the store") }
            let s = try Store.create(at: URL(fileURLWithPath: store), engine: FlinkStoreSettings.engineName, settings: settings.metaRows, adopting: true,
                                     rules: EngineRegistry.rules)
            let engine = try FlinkEngine.forStore(s)
            return (s, try engine.importer.refresh())
        }
        print("created Flink store \(report.0.root.path): \(report.1.added.count) snapshots recorded"
              + (report.1.unreadable.isEmpty ? "" : ", \(report.1.unreadable.count) unreadable"))
        for u in report.1.unreadable { print("UNREADABLE \(u.directory): \(u.error)") }
    }

    private func flinkSettings() throws(StoreError) -> FlinkStoreSettings {
        guard Store.isSafeRelativePath(savepointDir) else { throw .badInput("--savepoint-dir must be a path inside the store") }
        return FlinkStoreSettings(
            restURL: rest, jobID: job, pathMap: try pathMap.map { r throws(StoreError) in
                let rule = try FlinkStoreSettings.parsePathMapRule(r)
                let absolute = rule.to.hasPrefix("/") || rule.to.contains(":")
                return (rule.from, absolute ? rule.to : URL(fileURLWithPath: rule.to).standardizedFileURL.path)
            },
            savepointDirectory: savepointDir, defaultFormat: try SnapshotFormat(userInput: defaultFormat ?? "canonical"),
            triggerTimeout: triggerTimeout)
    }

    /// A Flink store on S3: the catalog on local disk, the owner lock object under the prefix, then a full pass.
    private func runFlinkS3() throws {
        if job != nil && rest == nil {
            CLI.fail(.badInput("--job needs --rest: the job is reached through that REST address")); throw ExitCode(2)
        }
        let (created, report) = try CLI.run { () throws(StoreError) -> (Store, FlinkImportReport) in
            guard let endpoint, let url = URL(string: endpoint), let scheme = url.scheme?.lowercased(), ["http", "https"].contains(scheme), url.host != nil else {
                throw .badInput("a store on S3 needs --endpoint URL, the S3 server's http:// or https:// address (got \(self.endpoint.map { "'\($0)'" } ?? "none"))")
            }
            let location: S3Location
            do { location = try S3Location(parsing: store) } catch { throw .badInput("\(error)") }
            var directory = try EngineRegistry.storeURL(store)
            if let cache { directory = URL(fileURLWithPath: cache).standardizedFileURL }
            if FileManager.default.fileExists(atPath: directory.appendingPathComponent("catalog.sqlite").path) {
                throw .alreadyExists("store at \(directory.path) (the catalog of \(location))")
            }
            let flink = try flinkSettings()
            let s3 = S3StoreSettings(location: location, endpoint: url, region: region, pathStyle: pathStyle)
            let files = try S3FilesBackend.files(s3)
            try S3OwnerLock(files: files).acquire(catalog: directory.path, breaking: breakLock)
            var rows = flink.metaRows
            for (k, v) in s3.metaRows { rows[k] = v }
            let s = try Store.create(at: directory, engine: FlinkStoreSettings.engineName, settings: rows,
                                     rules: EngineRegistry.rules, backends: EngineRegistry.backends)
            return (s, try FlinkEngine.forStore(s).importer.refresh(full: true))
        }
        print("created Flink store on \(created.files.location) (catalog \(created.root.path)): \(report.added.count) snapshots recorded"
              + (report.unreadable.isEmpty ? "" : ", \(report.unreadable.count) unreadable"))
        for u in report.unreadable { print("UNREADABLE \(u.directory): \(u.error)") }
    }
}

struct RefreshCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "refresh", abstract: "Flink stores: record new checkpoints and savepoints now, forget the ones Flink removed.")
    @OptionGroup var options: StoreOptions
    @Flag(help: "Print JSON.") var json = false
    @Flag(help: "On S3: list the whole store now (forgets what Flink removed), not only what can be new.") var full = false

    func run() throws {
        let store = try options.open(refresh: false)
        guard store.engineName == FlinkStoreSettings.engineName else {
            CLI.fail(.badInput("refresh applies to Flink stores; this one uses engine '\(store.engineName)'")); throw ExitCode(2)
        }
        let r = try CLI.run { () throws(StoreError) in try FlinkEngine.forStore(store).importer.refresh(full: full) }
        if json { CLI.printJSON(r); return }
        for n in r.added { print("added \(n)") }
        for n in r.forgotten { print("forgotten \(n) (removed by Flink)") }
        for u in r.unreadable { print("UNREADABLE \(u.directory): \(u.error)") }
        print("\(r.added.count) added, \(r.forgotten.count) forgotten, \(r.unchanged) unchanged, \(r.unreadable.count) unreadable")
        if let c = r.remote {
            print("\(c.full ? "full" : "incremental") pass on \(store.files.location): \(c.cost.listRequests) listing requests (\(c.cost.listBytes) bytes), \(c.cost.headRequests) HEAD, \(c.cost.getRequests) GET (\(c.cost.getBytes) bytes)")
        }
    }
}

struct ListCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "list", abstract: "List snapshots, oldest first.")
    @OptionGroup var options: StoreOptions
    @Flag(help: "Print JSON.") var json = false
    @Flag(help: "Include snapshots still being written.") var all = false

    func run() throws {
        let store = try options.open()
        let rows = try CLI.run { () throws(StoreError) in try store.summaries(includingWriting: all) }
        if json { CLI.printJSON(rows); return }
        // Columns as wide as their widest cell: a name is never cut short, so it can be pasted back.
        var t = TextTable([.init("NAME"), .init("KIND"), .init("FORMAT"), .init("CREATED (UTC)"), .init("FILES", .right), .init("SIZE")])
        for r in rows {
            let mark = (r.recoveryPoint ? " (recovery point)" : r.state == .writing ? " (writing)" : "")
                + (r.hold.map { " (held: \($0.reason))" } ?? "")
            t.append([r.name, r.kind.rawValue, r.format.rawValue, CLI.date(r.createdAt), String(r.files), CLI.bytes(r.size) + mark])
        }
        print(t.render(), terminator: "")
    }
}

struct ShowCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "show", abstract: "Show one snapshot: references, whether it may be deleted and why.")
    @OptionGroup var options: StoreOptions
    @Argument(help: "Snapshot name.") var name: String
    @Flag(help: "Print JSON.") var json = false
    @Flag(help: "List the snapshot's files too.") var files = false

    func run() throws {
        let store = try options.open()
        let r = try CLI.run { () throws(StoreError) in try store.report(name) }
        let entries = files ? try CLI.run({ () throws(StoreError) in try store.entries(of: r.id) }) : nil
        if json { CLI.printJSON(ReportWithEntries(report: r, entries: entries)); return }
        print("""
        name:          \(r.name) (id \(r.id))
        kind:          \(r.kind.rawValue)
        format:        \(r.format.rawValue)
        created:       \(CLI.date(r.createdAt)) UTC
        files:         \(r.files), \(CLI.bytes(r.size))
        objects:       \(r.objects), of which \(r.exclusiveObjects) only here (\(CLI.bytes(r.exclusiveBytes)) freed by a delete)
        references:    \(r.references.isEmpty ? "-" : r.references.joined(separator: ", "))
        referenced by: \(r.referencedBy.isEmpty ? "-" : r.referencedBy.joined(separator: ", "))
        hold:          \(r.hold.map { "\($0.reason) (since \(CLI.date($0.since)) UTC)" } ?? "no")
        deletable:     \(r.deletable ? "yes" : "no: \(r.notDeletableBecause ?? "")")
        last restorable: \(r.lastRestorableOf.map { "yes: the newest snapshot of job \($0.job) (\($0.state)\($0.protected ? "" : ", not protected")); deleting it leaves that job nothing to restore from" } ?? "no")
        not held:      \(r.notHeld.isEmpty ? "-" : "\(r.notHeld.count) (in the state, not in the snapshot)")
        """)
        for o in r.notHeld { print("  \(o.type) \(PathBytes.printable(o.path)): \(o.reason)") }
        var t = TextTable([.init("TYPE"), .init("SIZE"), .init("SHA256"), .init("PATH")], separator: " ")
        for e in entries ?? [] {
            // A file whose length only has to reach what the snapshot needs shows that need after its length.
            let rule = e.type == .file && e.sizeRule == .atLeast ? " (needs >= \(e.requiredSize))" : ""
            t.append([Self.typeLetter(e), String(e.size), e.sha256 ?? "-", PathBytes.printable(e.path) + rule])
        }
        if !t.rows.isEmpty { print(t.render(titles: false), terminator: "") }
    }

    /// `show --json`: the report, and with `--files` its entries (each with its size rule) in the same document.
    struct ReportWithEntries: Encodable {
        var report: SnapshotReport
        var entries: [SnapshotEntry]?

        enum CodingKeys: String, CodingKey { case entries }

        func encode(to encoder: Encoder) throws {
            try report.encode(to: encoder)
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encodeIfPresent(entries?.map(EntryWithBytes.init), forKey: .entries)
        }
    }

    /// An entry as JSON, with the exact bytes of a name or link target that is not UTF-8 beside its escaped form
    /// (see `PathBytes`), as `verify --json` and the manifest give them.
    struct EntryWithBytes: Encodable {
        var entry: SnapshotEntry

        enum CodingKeys: String, CodingKey { case pathBase64, symlinkTargetBase64 }

        func encode(to encoder: Encoder) throws {
            try entry.encode(to: encoder)
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encodeIfPresent(PathBytes.base64IfEscaped(entry.path), forKey: .pathBase64)
            try c.encodeIfPresent(PathBytes.base64IfEscaped(entry.symlinkTarget), forKey: .symlinkTargetBase64)
        }
    }
}

extension ShowCommand {
    /// The first letter of `ls -l` for an entry.
    static func typeLetter(_ e: SnapshotEntry) -> String {
        switch e.type {
        case .file: return "-"
        case .directory: return "d"
        case .symlink: return "l"
        case .fifo: return "p"
        case .device: return (e.mode & 0o170000) == 0o060000 ? "b" : "c"
        }
    }
}

struct DeleteCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "delete", abstract: "Delete snapshots, checked: files other snapshots need stay.",
        discussion: "The snapshots named go in one transaction; any refused (held, recovery point, in use) or unknown stay, and the exit code says why (5, 3).")
    @OptionGroup var options: StoreOptions
    @Argument(help: "Snapshot names.") var names: [String]
    @Flag(help: "Show which snapshots would go, which files would be removed and which shared ones kept, and the bytes freed; change nothing.") var dryRun = false
    @Flag(help: "Print JSON (the plan: snapshots, refused, missing, removedFiles, keptShared, directories, bytesFreed).") var json = false

    func run() throws {
        let store = try options.open()
        let plan = try CLI.run { () throws(StoreError) in try store.delete(names, dryRun: dryRun) }
        if json { CLI.printJSON(plan) } else { PlanText.print(plan, asked: true) }
        var firstError: StoreError?
        for n in names {
            let e: StoreError? = plan.missing.contains(n) ? .noSuchSnapshot(n)
                : plan.refused.first { $0.snapshot == n }.map { .busy(snapshot: n, reason: $0.reason) }
            if let e {
                CLI.fail(e)
                firstError = firstError ?? e
            }
        }
        if let firstError { throw ExitCode(firstError.exitCode) }
    }
}

struct MoveCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "move", abstract: "Rename a snapshot; never replaces an existing one.")
    @OptionGroup var options: StoreOptions
    @Argument(help: "Current name.") var from: String
    @Argument(help: "New name.") var to: String

    func run() throws {
        let store = try options.open()
        try CLI.run { () throws(StoreError) in try store.rename(from, to: to) }
        print("moved \(from) to \(to)")
    }
}

struct VerifyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "verify", abstract: "Check every referenced file: present, right size, right checksum; list unreferenced files.")
    @OptionGroup var options: StoreOptions
    @Flag(help: "Print JSON.") var json = false
    @Flag(help: "Check sizes only, not checksums.") var noChecksums = false

    func run() throws {
        let store = try options.open()
        if store.engineName == FlinkStoreSettings.engineName { return try verifyFlink(store) }
        let p = TerminalProgress("verify")
        let r = try CLI.run { () throws(StoreError) in try store.verify(checksums: !noChecksums, progress: p.handler) }
        p.finish()
        if json { CLI.printJSON(r) } else {
            print("\(r.snapshots) snapshots, \(r.objectsChecked) objects, \(CLI.bytes(r.bytesChecked)) checked")
            for x in r.problems { print("PROBLEM \(PathBytes.printable(x.path)): \(x.problem) (needed by \(x.snapshots.joined(separator: ", ")))") }
            for u in r.unreferenced { print("UNREFERENCED \(PathBytes.printable(u))") }
            print(r.clean ? "clean" : "\(r.problems.count) problems, \(r.unreferenced.count) unreferenced files (run `snapfs gc`)")
        }
        if !r.clean { throw ExitCode(10) }
    }
}

extension VerifyCommand {
    /// Flink stores: whether Flink could restore each snapshot, as Flink would resolve its files.
    func verifyFlink(_ store: Store) throws {
        let r = try CLI.run { () throws(StoreError) in try FlinkVerifier(store: store, settings: try FlinkStoreSettings.load(from: store)).verify() }
        if json { CLI.printJSON(r) } else {
            for s in r.snapshots {
                if s.restorable {
                    print("RESTORABLE     \(s.name) (\(s.kind.rawValue), \(s.format.rawValue), \(s.files) files)")
                } else {
                    print("NOT RESTORABLE \(s.name) (\(s.kind.rawValue), \(s.format.rawValue)): \(s.problems.count) of \(s.files) files missing or wrong")
                    for p in s.problems { print("    \(p.path): \(p.problem)") }
                }
            }
            for u in r.unreadable { print("UNREADABLE     \(u.directory): \(u.error)") }
            for u in r.unreferenced { print("UNREFERENCED   \(u)") }
            print("\(r.snapshots.count) snapshots: \(r.snapshots.count - r.notRestorable.count) restorable, \(r.notRestorable.count) not restorable"
                  + ", \(r.unreadable.count) unreadable, \(r.unreferenced.count) unreferenced files" + (r.unreferenced.isEmpty ? "" : " (run `snapfs gc`)"))
        }
        if !r.clean { throw ExitCode(10) }
    }
}

struct GCCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "gc", abstract: "Remove files no snapshot references.")
    @OptionGroup var options: StoreOptions
    @Option(help: "Keep unreferenced files younger than this many seconds (they may belong to a writer).") var grace: Double = 3600
    @Flag(help: "Print JSON.") var json = false

    func run() throws {
        let store = try options.open()
        let r = try CLI.run { () throws(StoreError) in
            store.engineName == FlinkStoreSettings.engineName ? try FlinkEngine.forStore(store).gc(grace: grace) : try store.gc(grace: grace)
        }
        if json { CLI.printJSON(r) } else {
            print("removed \(r.removedFiles.count) unreferenced files (\(CLI.bytes(r.removedBytes))); kept \(r.keptYoungerThanGrace.count) younger than \(Int(grace)) s")
        }
    }
}

struct FormatsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "formats", abstract: "Print the format matrix.")
    @Flag(help: "Print JSON.") var json = false

    func run() throws {
        if json { CLI.printJSON(FormatMatrix.rows) } else { print(FormatMatrix.table, terminator: "") }
    }
}

struct StatusCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "status", abstract: "Engine, job state, recovery point, retention, requests in flight.")
    @OptionGroup var options: StoreOptions
    @Flag(help: "Print JSON.") var json = false

    func run() throws {
        let store = try options.open()
        let st = try CLI.run { () throws(StoreError) in try store.status() }
        if json { CLI.printJSON(st); return }
        print("""
        engine:          \(st.engine)
        job:             \(st.job.running ? "running" : "not running")\(st.job.detail.map { " (\($0))" } ?? "")
        recovery point:  \(st.job.recoveryPoint ?? "-")
        snapshots:       \(st.snapshots) (\(st.held) held)
        retain:          \(st.retain ?? "-") checkpoints, every \(st.checkpointInterval ?? "-") s
        in flight:       \(st.requestsInFlight.count) requests
        """)
        if st.job.jobs.isEmpty { return }
        // Each job of a store that holds several: its state, its recovery point and whether a delete of it is
        // refused, and its newest snapshot (the last it can be restored from once it has ended).
        var t = TextTable([.init("JOB"), .init("STATE"), .init("PROTECTED"), .init("RECOVERY POINT"), .init("NEWEST"), .init("WHY")])
        for j in st.job.jobs {
            t.append([j.job, j.state, j.protected ? "yes" : "no", j.recoveryPoint ?? "-", j.newest ?? "-", j.detail])
        }
        print(t.render(), terminator: "")
    }
}

struct EventsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "events", abstract: "Print the event log: triggers, deletes, moves, retention, refusals.")
    @OptionGroup var options: StoreOptions
    @Flag(help: "Print JSON (one array of events).") var json = false

    func run() throws {
        let store = try options.open()
        let evs = try CLI.run { () throws(StoreError) in try store.events() }
        if json { CLI.printJSON(evs); return }
        var t = TextTable([.init("TIME"), .init("TYPE"), .init("SNAPSHOT"), .init("DETAIL")], separator: " ")
        for e in evs { t.append([CLI.date(e.time), e.type, e.snapshot ?? "-", e.detail]) }
        if !t.rows.isEmpty { print(t.render(titles: false), terminator: "") }
    }
}
