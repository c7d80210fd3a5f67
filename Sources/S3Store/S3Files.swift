import Foundation
import Logging
import S3Client
import SnapStore
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// A store's files in an S3 bucket under a prefix, for the store's rules (`StoreFiles`). Synchronous, as the
/// store is: each call waits for its requests (`Blocking`).
///
/// A "directory" is a key prefix; Hadoop's 0-byte `…/` marker objects are directories, never files. `stat` of one
/// path asks the server (HEAD); `stat` of many lists the narrowest prefix holding them once and asks with HEAD
/// only for the paths the listing lacks, so a listing that lags a write never makes a file count as missing.
public final class S3Files: StoreFiles, @unchecked Sendable {
    public let settings: S3StoreSettings
    public let client: S3Client
    private let counters = Mutex(StoreFilesCost())

    public init(settings: S3StoreSettings, client: S3Client) {
        self.settings = settings
        self.client = client
    }

    private var place: S3Location { settings.location }
    public var isLocal: Bool { false }
    public var location: String { settings.location.description }
    public var cost: StoreFilesCost { counters.withLock { $0 } }

    public func absolute(_ relative: String) -> String {
        relative.isEmpty ? place.description : place.description + "/" + relative
    }

    public func relative(ofAbsolute path: String) -> String? {
        guard let r = place.relative(ofURI: path), !r.isEmpty else { return nil }
        return r
    }

    /// An S3 failure as the store's error: a refusal (403) is "not permitted", with the server's words and where the
    /// credentials came from; anything else an I/O error naming the operation.
    static func storeError(_ error: any Error) -> StoreError {
        if let e = error as? StoreError { return e }
        guard let s3 = error as? S3Error else { return .io(path: "", errno: EIO, what: "S3: \(error)") }
        switch s3 {
        case .accessDenied: return .notPermitted(s3.description)
        case .credentials, .invalidArgument: return .badInput(s3.description)
        default: return .io(path: "", errno: EIO, what: s3.description)
        }
    }

    private func call<T: Sendable>(_ body: @escaping @Sendable (S3Client) async throws -> T) throws(StoreError) -> T {
        let client = self.client
        do { return try Blocking.run { try await body(client) } } catch { throw Self.storeError(error) }
    }

    static func stat(of object: S3Object) -> StoreFileStat {
        let nanos = Int64(((object.lastModified?.timeIntervalSince1970 ?? 0) * 1e9).rounded())
        return StoreFileStat(size: object.size, mtimeNanos: nanos, etag: object.etag)
    }

    public func stat(_ relative: String) throws(StoreError) -> StoreFileStat? {
        counters.withLock { $0.headRequests += 1 }
        let (bucket, key) = (place.bucket, place.key(relative))
        return try call { try await $0.head(bucket: bucket, key: key) }.map(Self.stat(of:))
    }

    public func stat(_ relatives: [String]) throws(StoreError) -> [StoreFileStat?] {
        // A few paths are asked one by one; more are listed once (the narrowest directory holding them all).
        guard relatives.count > 16 else {
            var out: [StoreFileStat?] = []
            for r in relatives { out.append(try stat(r)) }
            return out
        }
        // The narrowest directory holding every path, listed once.
        var common = relatives[0].split(separator: "/").dropLast().map(String.init)
        for r in relatives.dropFirst() {
            let parts = r.split(separator: "/").dropLast().map(String.init)
            var n = 0
            while n < common.count, n < parts.count, common[n] == parts[n] { n += 1 }
            common = Array(common.prefix(n))
        }
        let listing = try list(common.joined(separator: "/"), recursive: true, startAfter: nil)
        var out: [StoreFileStat?] = []
        for r in relatives {
            if let known = listing.files[r] { out.append(known) } else { out.append(try stat(r)) }
        }
        return out
    }

    public func read(_ relative: String, limit: Int) throws(StoreError) -> Data {
        guard let st = try stat(relative) else { throw .io(path: absolute(relative), errno: ENOENT, what: "cannot read") }
        guard st.size <= Int64(limit) else { throw .corrupt("\(absolute(relative)) is \(st.size) bytes, more than the \(limit) allowed") }
        let (bucket, key) = (place.bucket, place.key(relative))
        let data = try call { try await $0.get(bucket: bucket, key: key) }
        counters.withLock { $0.getRequests += 1; $0.getBytes += Int64(data.count) }
        return data
    }

    public func list(_ directory: String, namePrefix: String, recursive: Bool, startAfter: String?) throws(StoreError) -> StoreFileListing {
        let bucket = place.bucket
        let prefix = (directory.isEmpty ? place.listPrefix : place.key(directory) + "/") + namePrefix
        let after = startAfter.map { place.key($0) }
        let listing = try call { try await $0.list(bucket: bucket, prefix: prefix, delimiter: recursive ? nil : "/", startAfter: after) }
        counters.withLock { $0.listRequests += listing.requests; $0.listBytes += listing.bytes }
        var out = StoreFileListing()
        for object in listing.objects {
            guard let relative = place.relative(ofKey: object.key), !relative.isEmpty else { continue }
            var parent: Substring
            if relative.hasSuffix("/") {
                parent = relative.dropLast()
            } else {
                out.files[relative] = Self.stat(of: object)
                parent = relative[..<(relative.lastIndex(of: "/") ?? relative.startIndex)]
            }
            // Directories the keys imply, down to (not including) the listed one.
            while !parent.isEmpty, parent.count > directory.count, out.directories.insert(String(parent)).inserted {
                parent = parent[..<(parent.lastIndex(of: "/") ?? parent.startIndex)]
            }
        }
        for p in listing.commonPrefixes {
            guard let relative = place.relative(ofKey: p), !relative.isEmpty else { continue }
            out.directories.insert(relative.hasSuffix("/") ? String(relative.dropLast()) : relative)
        }
        return out
    }

    public func remove(_ relatives: [String]) throws(StoreError) -> [String: String] {
        guard !relatives.isEmpty else { return [:] }
        let bucket = place.bucket
        var byKey: [String: String] = [:]
        for r in relatives { byKey[place.key(r)] = r }
        let keys = relatives.map { place.key($0) }
        counters.withLock { $0.deleteRequests += (keys.count + 999) / 1000 }
        let result = try call { try await $0.delete(bucket: bucket, keys: keys) }
        var failed: [String: String] = [:]
        for f in result.failed where f.code != "NoSuchKey" {
            failed[byKey[f.key] ?? f.key] = "\(f.code)\(f.message.isEmpty ? "" : ": \(f.message)")"
        }
        // A key the answer does not mention was not confirmed removed: it stays journalled.
        let confirmed = Set(result.deleted).union(result.failed.filter { $0.code == "NoSuchKey" }.map(\.key))
        for k in keys where !confirmed.contains(k) && failed[byKey[k] ?? k] == nil {
            failed[byKey[k] ?? k] = "not in the server's DeleteObjects answer"
        }
        return failed
    }

    /// Server-side copy of one file to another path of the store (S3 cannot rename).
    public func copy(_ from: String, to: String) throws(StoreError) {
        let (bucket, source, target) = (place.bucket, place.key(from), place.key(to))
        _ = try call { try await $0.copy(bucket: bucket, from: source, to: target) }
    }

    /// Writes a small object (the owner lock).
    func put(_ key: String, _ data: Data, ifNoneMatch: Bool) throws(StoreError) {
        let bucket = place.bucket
        _ = try call { try await $0.put(bucket: bucket, key: key, data: data, ifNoneMatch: ifNoneMatch, contentType: "application/json") }
    }

    func get(_ key: String) throws(StoreError) -> Data? {
        let bucket = place.bucket
        return try call { client -> Data? in
            do { return try await client.get(bucket: bucket, key: key) } catch S3Error.notFound { return nil }
        }
    }
}

