/// What the mount generates rather than stores (control files, and the listings of the root, `.snapfs/requests`
/// and `.snapfs/snapshots`), remembered per inode with the time it last changed.
///
/// The kernel is told to skip opens and closes on this mount, so it keeps every file's pages and every
/// directory's listing, and drops them when a fresh `stat` shows a new modification time. That time must therefore
/// move exactly when the content does: moving it on every `stat` would throw the caches away for nothing, and
/// keeping it would serve stale content. Reads are served from the bytes recorded at the last `stat`, so they
/// agree with the size the kernel was given.
struct GeneratedContent {
    struct Version {
        var bytes: [UInt8]
        var changedAt: Int64
    }

    private var files: [UInt64: Version] = [:]
    private var listings: [UInt64: (fingerprint: Int, changedAt: Int64)] = [:]
    /// Generated files remembered at most; a reader of one forgotten meanwhile gets it generated again.
    private let limit = 4096

    /// Records `bytes` as the content of `ino` now; returns the version to serve.
    mutating func record(_ ino: UInt64, _ bytes: [UInt8], now: Int64) -> Version {
        if let v = files[ino], v.bytes == bytes { return v }
        let v = Version(bytes: bytes, changedAt: Self.after(files[ino]?.changedAt, now))
        if files.count >= limit { files.removeAll(keepingCapacity: true) }
        files[ino] = v
        return v
    }

    func current(_ ino: UInt64) -> Version? { files[ino] }

    /// The modification time of a generated directory whose entries are `names` now.
    mutating func listingTime(_ ino: UInt64, names: [String], now: Int64) -> Int64 {
        var h = Hasher()
        h.combine(names)
        let fingerprint = h.finalize()
        if let l = listings[ino], l.fingerprint == fingerprint { return l.changedAt }
        let t = Self.after(listings[ino]?.changedAt, now)
        listings[ino] = (fingerprint, t)
        return t
    }

    /// `now`, but strictly after `previous`: two changes within a clock tick still show as two times.
    private static func after(_ previous: Int64?, _ now: Int64) -> Int64 {
        guard let previous else { return now }
        return max(now, previous + 1)
    }
}
