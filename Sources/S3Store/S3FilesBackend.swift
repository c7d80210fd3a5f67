import Foundation
import Logging
import S3Client
import SnapStore
import Synchronization

/// Opens the files of stores kept on S3 (`files_scheme = s3` in the catalog): the client for the store's endpoint
/// with credentials from the usual places, and, for a process that may change the store, the owner lock checked.
public struct S3FilesBackend: StoreFilesBackend {
    public var scheme: String { S3StoreSettings.scheme }
    let logger: Logger

    public init(logger: Logger = Logger(label: "snapfs.s3")) { self.logger = logger }

    public func files(for store: Store) throws(StoreError) -> any StoreFiles {
        guard let settings = try S3StoreSettings.of(store) else {
            throw .corrupt("the store at \(store.root.path) names no S3 location")
        }
        let files = S3Files(settings: settings, client: try Self.client(for: settings, logger: logger))
        if !store.isReadOnly { try S3OwnerLock(files: files).check() }
        return files
    }

    /// One client per endpoint and credentials for the life of the process: a client holds connections, and
    /// stores are opened many times over (every command, the mount's workers).
    static func client(for settings: S3StoreSettings, logger: Logger) throws(StoreError) -> S3Client {
        let credentials: S3Credentials
        do { credentials = try S3Credentials.resolve() } catch { throw S3Files.storeError(error) }
        let id = "\(settings.endpoint.absoluteString)|\(settings.region)|\(settings.pathStyle)|\(credentials.accessKeyId)|\(credentials.secretAccessKey.hashValue)"
        return clients.withLock { all in
            if let c = all[id] { return c }
            let c = S3Client(endpoint: settings.s3Endpoint, credentials: credentials, logger: logger)
            all[id] = c
            return c
        }
    }

    private static let clients = Mutex<[String: S3Client]>([:])

    /// The files of a location not yet in any catalog (for `init`, before the store exists).
    public static func files(_ settings: S3StoreSettings, logger: Logger = Logger(label: "snapfs.s3")) throws(StoreError) -> S3Files {
        S3Files(settings: settings, client: try client(for: settings, logger: logger))
    }
}
