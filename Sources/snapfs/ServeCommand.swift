import ArgumentParser
import Dispatch
import FlinkEngine
import Foundation
import Logging
import SnapAPI
import SnapStore

/// `--listen`, `--token-file` and `--allow-remote`, shared by `serve` and `mount`.
struct APIOptions: ParsableArguments {
    @Option(help: "Serve the REST API on HOST:PORT (loopback only unless --allow-remote; port 0 picks a free one).")
    var listen: String?
    @Option(help: "A file whose first line is the token every REST request but /healthz must send as `Authorization: Bearer <token>`.")
    var tokenFile: String?
    @Flag(help: "Let --listen name an address that is not loopback.")
    var allowRemote = false

    /// `--listen` and the token, checked before the daemon takes its lock or touches the store: nil without
    /// `--listen`.
    func validated() throws -> (address: ListenAddress, token: String?)? {
        guard let listen else {
            if tokenFile != nil || allowRemote { CLI.fail(.badInput("--token-file and --allow-remote need --listen")); throw ExitCode(2) }
            return nil
        }
        let address = try CLI.run { () throws(StoreError) in try ListenAddress(parsing: listen, allowRemote: allowRemote) }
        let token = try tokenFile.map { f in try CLI.run { () throws(StoreError) in try APIServer.readToken(f) } }
        return (address, token)
    }

    /// Bootstraps metrics and starts the server when `--listen` was given; nil otherwise. Prints the bound address
    /// on stdout (`serving REST on http://HOST:PORT`), which scripts and tests read when they asked for port 0.
    func start(_ settings: (address: ListenAddress, token: String?)?, store: Store, engine: any SnapshotEngine, logger: Logger) throws -> APIServer? {
        guard let (address, token) = settings else { return nil }
        let registry = APIServer.bootstrapMetrics()
        var jobStatus: (@Sendable (String) throws(StoreError) -> Data)?
        var jobIntent: (@Sendable (String, StoreAccess.JobIntentRequest) throws(StoreError) -> Data)?
        if let flink = engine as? FlinkEngine {
            jobStatus = { (job: String) throws(StoreError) -> Data in try Self.encode(try flink.jobStatus(job)) }
            jobIntent = { (job: String, request: StoreAccess.JobIntentRequest) throws(StoreError) -> Data in
                try Self.encode(try JobIntentCall.run(request, job: job, engine: flink))
            }
        }
        let access = StoreAccess(store: store, engine: engine, verify: Self.verifier(for: store), jobStatus: jobStatus, jobIntent: jobIntent)
        let server = try CLI.run { () throws(StoreError) in
            try APIServer.start(access: access, listen: address, token: token, registry: registry, logger: logger)
        }
        // Unbuffered, so a script reading the port sees it now, not when the daemon exits.
        FileHandle.standardOutput.write(Data("serving REST on http://\(server.bound)\(token == nil ? "" : " (token required)")\n".utf8))
        return server
    }

    /// `snapfs verify` as the REST API runs it: the store's own check, or for Flink whether Flink could restore each
    /// snapshot; with the report `verify --json` prints.
    static func verifier(for store: Store) -> @Sendable (Bool) throws(StoreError) -> StoreAccess.Verification {
        { (checksums: Bool) throws(StoreError) -> StoreAccess.Verification in
            if store.engineName == FlinkStoreSettings.engineName {
                let r = try FlinkVerifier(store: store, settings: try FlinkStoreSettings.load(from: store)).verify()
                return .init(clean: r.clean, snapshots: r.snapshots.count, problems: r.notRestorable.count + r.unreadable.count,
                             unreferenced: r.unreferenced.count, reportJSON: try encode(r))
            }
            let r = try store.verify(checksums: checksums)
            return .init(clean: r.clean, snapshots: r.snapshots, problems: r.problems.count, unreferenced: r.unreferenced.count,
                         reportJSON: try encode(r))
        }
    }

    private static func encode<T: Encodable>(_ value: T) throws(StoreError) -> Data {
        let enc = JSONEncoder()
        enc.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        do { return try enc.encode(value) } catch { throw .corrupt("cannot encode the verify report: \(error)") }
    }
}

struct ServeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Serve a store's REST API without mounting it; runs in the foreground until SIGINT or SIGTERM.",
        discussion: """
        snapfs serve STORE --listen 127.0.0.1:8080 [--token-file FILE]
        The daemon of the store, as `mount` is: it takes the store's daemon lock and, like the mount, takes the \
        local engine's system checkpoints or catches a Flink store up with Flink's. OpenAPI document: /openapi.yaml.
        """)

    @Argument(help: "The store directory.") var store: String
    @OptionGroup var api: APIOptions
    @Option(help: "The live state directory, if not the one the store was created with.") var state: String?
    @Option(help: "Seconds between system checkpoints (default: the store's setting; 0: none).") var checkpointInterval: Double?
    @Option(help: "System checkpoints to keep (default: the store's setting).") var retain: Int?
    @Flag(help: "Log only warnings and errors.") var quiet = false

    func run() throws {
        CLI.bootstrapLogging(verbose: !quiet)
        let logger = Logger(label: "snapfs.serve")
        guard api.listen != nil else { CLI.fail(.badInput("serve needs --listen HOST:PORT")); throw ExitCode(2) }
        if let r = retain, r < 1 { CLI.fail(.badInput("--retain must be at least 1")); throw ExitCode(2) }
        let listen = try api.validated()
        let storeURL = try CLI.run { () throws(StoreError) in try EngineRegistry.storeURL(store) }.standardizedFileURL
        try CLI.run { () throws(StoreError) in try Store.checkCatalogPresent(at: storeURL) }
        let lock = access(storeURL.path, W_OK) == 0 ? try CLI.run { () throws(StoreError) in try DaemonLock(store: storeURL) } : nil
        let opened = try CLI.run { () throws(StoreError) in try EngineRegistry.open(storeURL) }
        let engine = try makeEngine(store: opened, stateOverride: state)
        if opened.engineName == FlinkStoreSettings.engineName, !opened.isReadOnly {
            _ = try CLI.run { () throws(StoreError) in try FlinkEngine.forStore(opened).importer.refresh() }
        }
        guard let server = try api.start(listen, store: opened, engine: engine, logger: logger) else { return }
        let scheduler = opened.isReadOnly ? nil : makeScheduler(store: opened, engine: engine, interval: checkpointInterval, retain: retain)
        scheduler?.start()
        logger.notice("serving", metadata: ["store": .string(storeURL.path), "listen": .string(server.bound.description)])
        withExtendedLifetime(lock) { Self.waitForTermination() }
        scheduler?.stop()
        server.stop()
    }

    /// Blocks until SIGINT or SIGTERM.
    static func waitForTermination() {
        let done = DispatchSemaphore(value: 0)
        var sources: [any DispatchSourceSignal] = []
        for sig in [SIGINT, SIGTERM] {
            signal(sig, SIG_IGN)
            let s = DispatchSource.makeSignalSource(signal: sig, queue: .global())
            s.setEventHandler { done.signal() }
            s.resume()
            sources.append(s)
        }
        done.wait()
        sources.forEach { $0.cancel() }
    }
}
