import ArgumentParser
import Foundation
import Logging
import S3Client
import S3Mount
import S3Store
import SnapFileOps
import SnapStore

/// Options of `snapfs mount` for a store whose files are in S3: where its read cache lives and how large it may grow,
/// and (for a store whose catalog is local but whose files were put in a bucket) where the files are.
struct S3MountOptions: ParsableArguments {
    @Option(help: ArgumentHelp("Largest size of the read cache of a store on S3, in bytes or with a unit (K, M, G, T; powers of 1024).",
                               valueName: "size"))
    var cacheSize: String = "10G"
    @Option(help: ArgumentHelp("Directory of the read cache of a store on S3 (default: STORE/s3-cache).", valueName: "dir"))
    var cacheDir: String?
    @Option(help: ArgumentHelp("Read the store's files from this S3 location, where they are at the same paths relative to it as in the store directory.",
                               valueName: "s3://bucket/prefix"))
    var objectsFrom: String?
    @Option(help: ArgumentHelp("The S3 endpoint of --objects-from (e.g. http://127.0.0.1:7480).", valueName: "url"))
    var endpoint: String?
    @Option(help: "The S3 region of --objects-from.") var region: String = "us-east-1"
    @Flag(help: "Address buckets as ENDPOINT/BUCKET (path style) rather than BUCKET.ENDPOINT.") var pathStyle = false

    /// `--cache-size` in bytes.
    func cacheLimit() throws(StoreError) -> Int64 {
        guard let n = Self.parseSize(cacheSize), n > 0 else {
            throw .badInput("--cache-size '\(cacheSize)' is not a size: give bytes or a number with K, M, G or T (e.g. 10G)")
        }
        return n
    }

    static func parseSize(_ text: String) -> Int64? {
        var digits = text.trimmingCharacters(in: .whitespaces).uppercased()
        for suffix in ["IB", "B"] where digits.hasSuffix(suffix) && digits.count > suffix.count {
            digits.removeLast(suffix.count)
            break
        }
        let shifts: [Character: Int64] = ["K": 10, "M": 20, "G": 30, "T": 40]
        var shift: Int64 = 0
        if let last = digits.last, let s = shifts[last] { shift = s; digits.removeLast() }
        guard let value = Double(digits), value >= 0 else { return nil }
        let bytes = value * Double(Int64(1) << shift)
        return bytes < 9e18 ? Int64(bytes) : nil
    }
}

/// The S3 side of a mount: the object source and the client it holds, shut down when the mount ends.
struct S3MountSource {
    let cache: S3ObjectCache
    let client: S3Client

    func shutdown() { Self.shutdown(client) }

    static func shutdown(_ client: S3Client) {
        let done = DispatchSemaphore(value: 0)
        Task.detached { try? await client.shutdown(); done.signal() }
        done.wait()
    }
}

enum S3MountWiring {
    /// Where `store`'s files are when they are in S3, or nil when they are in its directory (every local store). A
    /// store created on S3 (`snapfs init s3://…`) says so in its catalog; `--objects-from` names a bucket that holds a
    /// local store's files at the same paths.
    static func storeFilesOnS3(_ store: Store, _ options: S3MountOptions) throws -> S3StoreFiles? {
        if let recorded = try S3StoreSettings.of(store) {
            guard options.objectsFrom == nil, options.endpoint == nil else {
                throw StoreError.badInput("this store's files are in \(recorded.location) already (recorded by `snapfs init`); --objects-from and --endpoint are for a store kept on disk")
            }
            return S3StoreFiles(client: try readClient(recorded.s3Endpoint), location: recorded.location)
        }
        guard let uri = options.objectsFrom else {
            if options.endpoint != nil { throw StoreError.badInput("--endpoint is for --objects-from, which is not given") }
            return nil
        }
        let location: S3Location
        do { location = try S3Location(parsing: uri) } catch {
            throw StoreError.badInput("--objects-from: \(error)")
        }
        guard let endpointText = options.endpoint, let url = URL(string: endpointText), url.scheme == "http" || url.scheme == "https",
              url.host != nil else {
            throw StoreError.badInput("--objects-from needs --endpoint URL (http:// or https://, e.g. http://127.0.0.1:7480), not '\(options.endpoint ?? "")'")
        }
        return S3StoreFiles(client: try readClient(S3Endpoint(url: url, region: options.region, pathStyle: options.pathStyle)),
                            location: location)
    }

    /// A client of its own for the mount's reads, shut down when the mount ends. Reads wait on these requests, so a
    /// server that stops answering fails a read within seconds and never hangs it.
    static func readClient(_ endpoint: S3Endpoint) throws -> S3Client {
        let credentials: S3Credentials
        do { credentials = try S3Credentials.resolve() } catch { throw StoreError.badInput("\(error)") }
        return S3Client(endpoint: endpoint, credentials: credentials,
                        retry: S3RetryPolicy(maxAttempts: 4, baseDelay: .milliseconds(100), maxDelay: .seconds(1)),
                        connectTimeout: .seconds(3), readTimeout: .seconds(20))
    }

    /// The object source of a mount of `store`: nil for a store whose files are in its directory; for one on S3, the
    /// read cache (under `--cache-dir`, default STORE/s3-cache, bounded by `--cache-size`).
    static func objectSource(_ store: Store, _ options: S3MountOptions, logger: Logger) throws -> S3MountSource? {
        // Checked before a client exists: a client must be shut down, not dropped.
        let limit = try options.cacheLimit()
        guard let files = try storeFilesOnS3(store, options) else { return nil }
        let dir = options.cacheDir.map { URL(fileURLWithPath: $0).standardizedFileURL } ?? store.root.appendingPathComponent("s3-cache")
        let cache: S3ObjectCache
        do {
            cache = try makeObjectSource(files: files, cacheDirectory: dir, limit: limit)
        } catch {
            S3MountSource.shutdown(files.client)
            throw error
        }
        logger.notice("reading stored files from S3 through a cache", metadata: [
            "location": .string(files.location.description), "endpoint": .string(files.client.endpoint.description),
            "cache": .string(dir.path), "cacheLimit": .stringConvertible(limit)])
        return S3MountSource(cache: cache, client: files.client)
    }
}
