import Foundation
import S3Client
import SnapStore

/// Where a store's files are on S3, kept in its catalog's `meta` table: the location, the endpoint, the region and
/// the addressing. Never credentials: they come from the environment or `~/.aws/credentials` each time a process
/// opens the store, so they appear in no catalog, event, log line or argument.
public struct S3StoreSettings: Sendable, Hashable {
    public var location: S3Location
    public var endpoint: URL
    public var region: String
    public var pathStyle: Bool
    /// Names this catalog in the owner lock object, so that a second catalog on the same prefix is refused.
    public var storeID: String

    public static let scheme = "s3"

    enum Key {
        static let location = "s3.location"
        static let endpoint = "s3.endpoint"
        static let region = "s3.region"
        static let pathStyle = "s3.path_style"
        static let storeID = "s3.store_id"
    }

    public init(location: S3Location, endpoint: URL, region: String = "us-east-1", pathStyle: Bool = true, storeID: String = UUID().uuidString) {
        self.location = location
        self.endpoint = endpoint
        self.region = region
        self.pathStyle = pathStyle
        self.storeID = storeID
    }

    public var s3Endpoint: S3Endpoint { S3Endpoint(url: endpoint, region: region, pathStyle: pathStyle) }

    /// The settings as catalog `meta` rows, for `Store.create`.
    public var metaRows: [String: String] {
        [Store.filesSchemeKey: Self.scheme, Key.location: location.description, Key.endpoint: endpoint.absoluteString,
         Key.region: region, Key.pathStyle: pathStyle ? "1" : "0", Key.storeID: storeID]
    }

    /// Whether a store's files are on S3, and where: nil for a store on a file system. The one question other
    /// layers (the mount's read path) ask a store about S3.
    public static func of(_ store: Store) throws(StoreError) -> S3StoreSettings? {
        guard try store.meta(Store.filesSchemeKey) == scheme else { return nil }
        guard let text = try store.meta(Key.location), let endpointText = try store.meta(Key.endpoint),
              let endpoint = URL(string: endpointText), let id = try store.meta(Key.storeID) else {
            throw .corrupt("the store at \(store.root.path) says its files are on S3 but its catalog lacks the location or endpoint")
        }
        let location: S3Location
        do { location = try S3Location(parsing: text) } catch { throw .corrupt("the store's S3 location '\(text)': \(error)") }
        return S3StoreSettings(location: location, endpoint: endpoint, region: try store.meta(Key.region) ?? "us-east-1",
                               pathStyle: try store.meta(Key.pathStyle) != "0", storeID: id)
    }

    /// Where the catalog (and the mount's read cache) of an S3 store live when `init` is not given `--cache DIR`:
    /// `$SNAPFS_S3_HOME/<bucket>/<prefix>` if that is set; else `/var/lib/snapfs/s3/…` for root and
    /// `$XDG_STATE_HOME/snapfs/s3/…` (default `~/.local/state/snapfs/s3/…`) for anyone else. The prefix is one
    /// directory name (its `/` written `%2F`), so stores on nested prefixes never share a directory.
    public static func defaultLocalDirectory(for location: S3Location,
                                             environment: [String: String] = ProcessInfo.processInfo.environment) -> URL {
        let base: String
        if let home = environment["SNAPFS_S3_HOME"], !home.isEmpty {
            base = home
        } else if getuid() == 0 {
            base = "/var/lib/snapfs/s3"
        } else {
            let state = environment["XDG_STATE_HOME"].flatMap { $0.isEmpty ? nil : $0 }
                ?? (environment["HOME"] ?? NSHomeDirectory()) + "/.local/state"
            base = state + "/snapfs/s3"
        }
        let prefix = location.prefix.isEmpty ? "%ROOT" : location.prefix.replacingOccurrences(of: "%", with: "%25").replacingOccurrences(of: "/", with: "%2F")
        return URL(fileURLWithPath: base).appendingPathComponent(location.bucket).appendingPathComponent(prefix)
    }
}
