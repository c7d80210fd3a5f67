import FlinkEngine
import Foundation
import LocalEngine
import S3Client
import S3Store
import SnapStore

/// What the daemon runs beside the mount to take system checkpoints.
protocol CheckpointScheduling {
    func start()
    func stop()
}

extension CheckpointScheduler: CheckpointScheduling {}
extension FlinkStoreWatcher: CheckpointScheduling {}

/// Every engine's rules: every command and the mount open and create stores with this one list, so a store is never
/// handled without its engine's rules (a Flink store refuses to open without them).
enum EngineRegistry {
    static var rules: [any EngineRules] { [FlinkRules()] }

    /// Where stores' files may be besides the store's own directory: S3.
    static var backends: [any StoreFilesBackend] { [S3FilesBackend()] }

    static func open(_ url: URL) throws(StoreError) -> Store { try Store.open(at: url, rules: rules, backends: backends) }

    /// The store directory a user named: a path, or `s3://BUCKET/PREFIX` (or `s3a://`) for the catalog of an S3
    /// store in its default place (`S3StoreSettings.defaultLocalDirectory`).
    static func storeURL(_ argument: String) throws(StoreError) -> URL {
        let lower = argument.lowercased()
        guard lower.hasPrefix("s3://") || lower.hasPrefix("s3a://") else { return URL(fileURLWithPath: argument) }
        do { return S3StoreSettings.defaultLocalDirectory(for: try S3Location(parsing: argument)) }
        catch { throw .badInput("\(error)") }
    }
}

/// The engine a store was created for (`engine` in its catalog).
func makeEngine(store: Store, stateOverride: String?) throws -> any SnapshotEngine {
    try CLI.run { () throws(StoreError) -> any SnapshotEngine in
        switch store.engineName {
        case "local":
            return try LocalEngine.forStore(store, stateOverride: stateOverride)
        case FlinkStoreSettings.engineName:
            return try FlinkEngine.forStore(store)
        default:
            throw .badInput("the store at \(store.root.path) uses engine '\(store.engineName)', which this build does not know")
        }
    }
}

/// What runs beside the mount: for the local engine, a checkpoint scheduler with the store's settings unless
/// overridden; for Flink, which takes its own checkpoints, a watcher that catches the catalog up with them.
func makeScheduler(store: Store, engine: any SnapshotEngine, interval: Double?, retain: Int?) -> CheckpointScheduling? {
    if let flink = engine as? FlinkEngine { return FlinkStoreWatcher(engine: flink) }
    guard engine is LocalEngine else { return nil }
    let every = interval ?? (try? store.meta("checkpoint_interval")).flatMap { $0.flatMap(Double.init) } ?? 0
    guard every > 0 else { return nil }
    let keep = retain ?? (try? store.meta("retain")).flatMap { $0.flatMap(Int.init) } ?? 5
    return CheckpointScheduler(store: store, engine: engine, interval: every, retain: keep)
}
