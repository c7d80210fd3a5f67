/// Which cache entries exist, how many bytes they take, and which to evict: least recently used first, never one
/// that is in use (a read holds its descriptor, or a fetch writes into it).
///
/// Sizes count an object's full length from the moment its entry is made (its file is that long, sparse until
/// fetched), so the limit bounds what the cache can grow to, not only what it holds now. Pure bookkeeping, tested
/// without a disk.
public struct CacheIndex<Key: Hashable & Sendable>: Sendable {
    public struct Item: Sendable, Equatable {
        public var size: Int64
        public var lastUse: UInt64
        /// Reads and fetches using the entry now; it is not evicted while this is above 0.
        public var users: Int
    }

    public let limit: Int64
    public private(set) var items: [Key: Item] = [:]
    public private(set) var bytes: Int64 = 0
    private var clock: UInt64 = 0

    public init(limit: Int64) {
        self.limit = limit
    }

    public var count: Int { items.count }

    /// Adds an entry (in use by the caller: `users` 1) and returns the entries to evict so that the total fits the
    /// limit again, least recently used first. When the entries in use alone exceed the limit, the total stays over
    /// it until they are released (`overLimit` says so); nothing in use is ever evicted.
    public mutating func add(_ key: Key, size: Int64, lastUse: UInt64? = nil, users: Int = 1) -> [Key] {
        if let old = items[key] { bytes -= old.size }
        clock += 1
        items[key] = Item(size: size, lastUse: lastUse ?? clock, users: users)
        bytes += size
        return evictions()
    }

    /// Marks `key` used now and in use by one more reader or fetch. False when there is no such entry.
    @discardableResult
    public mutating func acquire(_ key: Key) -> Bool {
        guard items[key] != nil else { return false }
        clock += 1
        items[key]!.lastUse = clock
        items[key]!.users += 1
        return true
    }

    /// One reader or fetch is done with `key`; returns the entries to evict now that it may be evictable.
    public mutating func release(_ key: Key) -> [Key] {
        guard items[key] != nil else { return [] }
        items[key]!.users = max(0, items[key]!.users - 1)
        return evictions()
    }

    /// Removes an entry (evicted, or dropped because its object changed).
    public mutating func remove(_ key: Key) {
        if let old = items.removeValue(forKey: key) { bytes -= old.size }
    }

    public var overLimit: Bool { bytes > limit }

    /// Evicts (removes and returns) idle entries, oldest use first, until the total fits.
    private mutating func evictions() -> [Key] {
        guard bytes > limit else { return [] }
        var out: [Key] = []
        let idle = items.filter { $0.value.users == 0 }.sorted { $0.value.lastUse < $1.value.lastUse }
        for (key, item) in idle {
            guard bytes > limit else { break }
            items[key] = nil
            bytes -= item.size
            out.append(key)
        }
        return out
    }
}
