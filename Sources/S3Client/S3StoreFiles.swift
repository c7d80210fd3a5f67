import Foundation

/// A store's files kept in a bucket under a prefix, seen the way a store reader needs them: every file below the
/// prefix with its size, the "directories" they imply, a file's size, its bytes.
///
/// A "directory" is only a key prefix. Hadoop's S3A client (what Flink writes S3 stores with) also leaves 0-byte
/// `…/` marker objects; they are directories here, never files. Nothing is decided on a listing alone: `stat`
/// answers from a listing when the key is in it and asks the server (HEAD) when it is not, as a listing may lag a
/// write on some servers.
public struct S3StoreFiles: Sendable {
    public let client: S3Client
    public let location: S3Location

    public init(client: S3Client, location: S3Location) {
        self.client = client
        self.location = location
    }

    /// Everything below the store, from one paged listing.
    public struct Listing: Sendable {
        /// Store-relative path → the object.
        public var files: [String: S3Object] = [:]
        /// Store-relative directories, from the keys' parents and from marker objects.
        public var directories: Set<String> = []
        /// ListObjectsV2 requests the listing took.
        public var requests = 0

        public init(files: [String: S3Object] = [:], directories: Set<String> = [], requests: Int = 0) {
            self.files = files
            self.directories = directories
            self.requests = requests
        }
    }

    public func list(pageSize: Int? = nil) async throws -> Listing {
        let all = try await client.list(bucket: location.bucket, prefix: location.listPrefix, pageSize: pageSize)
        var out = Listing(requests: all.requests)
        for object in all.objects {
            guard let relative = location.relative(ofKey: object.key), !relative.isEmpty else { continue }
            var parent: Substring
            if relative.hasSuffix("/") {
                parent = relative.dropLast()
            } else {
                out.files[relative] = object
                parent = relative[..<(relative.lastIndex(of: "/") ?? relative.startIndex)]
            }
            while !parent.isEmpty, out.directories.insert(String(parent)).inserted {
                parent = parent[..<(parent.lastIndex(of: "/") ?? parent.startIndex)]
            }
        }
        return out
    }

    /// Directories (store-relative, sorted) that hold a file named `name`, at most `maxDepth` below the store,
    /// none inside a directory named in `skipping` (such as Flink's `shared/` and `taskowned/`).
    public static func directories(holding name: String, in listing: Listing, maxDepth: Int, skipping: Set<String> = []) -> [String] {
        var out: [String] = []
        for path in listing.files.keys where path == name || path.hasSuffix("/" + name) {
            let directory = path == name ? "" : String(path.dropLast(name.count + 1))
            let parts = directory.split(separator: "/")
            guard !directory.isEmpty, parts.count <= maxDepth, !parts.contains(where: { skipping.contains(String($0)) }) else { continue }
            out.append(directory)
        }
        return out.sorted()
    }

    /// A file's size and ETag: from `listing` when it has the key, else from the server; nil when there is none.
    public func stat(_ relative: String, in listing: Listing? = nil) async throws -> S3Object? {
        if let known = listing?.files[relative] { return known }
        return try await client.head(bucket: location.bucket, key: location.key(relative))
    }

    /// A file's bytes, whole or a range; `limit` refuses a larger file before reading it.
    public func read(_ relative: String, range: Range<Int64>? = nil, limit: Int64? = nil) async throws -> Data {
        if let limit, range == nil, let object = try await stat(relative), object.size > limit {
            throw S3Error.invalidArgument("\(location)/\(relative) is \(object.size) bytes, more than the \(limit) allowed")
        }
        return try await client.get(bucket: location.bucket, key: location.key(relative), range: range)
    }
}
