import Foundation
import SnapStore

/// One catalog per bucket prefix: a lock object `PREFIX/.snapfs-owner.json` names the catalog that manages the
/// store (its id, host and directory). It is written with a conditional PUT (`If-None-Match: *`), so of two
/// catalogs created on one prefix at once exactly one gets it, on servers that honour the condition (Ceph RGW and
/// SeaweedFS both do, as the tests show). Every process that opens the store to change it reads the lock back and
/// is refused unless it names this catalog: two catalogs on one prefix would each delete what only the other
/// knows is needed. The lock is named under a dot, which the importer never takes for a store file.
///
/// A lock whose catalog is gone (its disk lost) is broken with `snapfs init … --break-lock`, which replaces it.
public struct S3OwnerLock: Sendable {
    public static let name = ".snapfs-owner.json"

    struct Record: Codable, Equatable {
        var storeID: String
        var host: String
        var catalog: String
        var createdAt: Double
    }

    let files: S3Files

    public init(files: S3Files) { self.files = files }

    var key: String { files.settings.location.key(Self.name) }

    /// Takes the lock for a new catalog, or with `breaking` replaces whatever lock is there.
    public func acquire(catalog: String, breaking: Bool) throws(StoreError) {
        let record = Record(storeID: files.settings.storeID, host: ProcessInfo.processInfo.hostName, catalog: catalog,
                            createdAt: Date().timeIntervalSince1970)
        let data = (try? JSONEncoder().encode(record)) ?? Data()
        do {
            try files.put(key, data, ifNoneMatch: !breaking)
        } catch {
            // A conditional PUT retried after a lost answer meets its own first write: read it back.
            if let held = try holder(), held.storeID == record.storeID { return }
            if let held = try holder() { throw Self.refusal(held, location: files.location) }
            throw error
        }
        guard let held = try holder(), held.storeID == record.storeID else {
            throw .locked("\(files.location) is managed by another SnapFS catalog (its lock object was replaced while this one was being written); nothing was created")
        }
    }

    /// Throws unless the lock names this catalog.
    public func check() throws(StoreError) {
        guard let held = try holder() else {
            throw .locked("\(files.location) has no SnapFS lock object (\(Self.name)): it was removed, or another catalog's lock was broken; re-create the catalog with `snapfs init \(files.location) … --break-lock` if this one should manage it")
        }
        if held.storeID != files.settings.storeID { throw Self.refusal(held, location: files.location) }
    }

    func holder() throws(StoreError) -> Record? {
        guard let data = try files.get(key) else { return nil }
        guard let record = try? JSONDecoder().decode(Record.self, from: data) else {
            throw .corrupt("\(files.location)/\(Self.name) is not a SnapFS lock object")
        }
        return record
    }

    static func refusal(_ held: Record, location: String) -> StoreError {
        let since = ISO8601DateFormatter().string(from: Date(timeIntervalSince1970: held.createdAt))
        return .locked("\(location) is already managed by another SnapFS catalog (\(held.catalog) on host \(held.host), since \(since)): only one catalog may manage a bucket prefix; if that catalog is gone for good, take the prefix over with `snapfs init \(location) … --break-lock`")
    }
}
