/// Which parts of one object are in its cache file, at the granularity of fixed-size chunks, each fetched by one
/// ranged GET.
///
/// A chunk is missing, being fetched (with how many of its bytes, from its start, are already written), present, or
/// failed (its last fetch failed; the next read fetches it again). A read waits only for the bytes of its own range:
/// those of a chunk in flight count as soon as they are written, before the chunk is whole. Pure bookkeeping: no
/// I/O, no locks, so it is tested without a server or a kernel.
public struct ChunkMap: Sendable, Equatable {
    public enum State: Sendable, Equatable {
        case missing
        /// Fetch number `attempt`; `filled` bytes from the chunk's start are written.
        case fetching(attempt: UInt64, filled: Int64)
        case present
        /// Fetch number `attempt` failed; the readers that waited on it fail with `reason`.
        case failed(attempt: UInt64, reason: String)
    }

    public let size: Int64
    public let chunkSize: Int64
    public private(set) var states: [State]
    private var fetchCounter: UInt64 = 0

    public init(size: Int64, chunkSize: Int64) {
        precondition(chunkSize > 0 && size >= 0)
        self.size = size
        self.chunkSize = chunkSize
        self.states = Array(repeating: .missing, count: Int((size + chunkSize - 1) / chunkSize))
    }

    /// A map of an object whose bytes are all there (a cache file completed earlier).
    public static func complete(size: Int64, chunkSize: Int64) -> ChunkMap {
        var m = ChunkMap(size: size, chunkSize: chunkSize)
        for i in m.states.indices { m.states[i] = .present }
        return m
    }

    public var count: Int { states.count }
    public var isComplete: Bool { states.allSatisfy { $0 == .present } }
    public var inFlight: Int { states.filter { if case .fetching = $0 { return true } else { return false } }.count }

    /// The byte range of chunk `i`.
    public func range(ofChunk i: Int) -> Range<Int64> {
        let start = Int64(i) * chunkSize
        return start..<min(start + chunkSize, size)
    }

    /// The chunks `range` (cut at the object's end) touches.
    public func chunks(covering range: Range<Int64>) -> Range<Int> {
        let lower = max(range.lowerBound, 0), upper = min(range.upperBound, size)
        guard lower < upper else { return 0..<0 }
        return Int(lower / chunkSize)..<Int((upper - 1) / chunkSize + 1)
    }

    /// Whether every byte of `range` (cut at the object's end) is written.
    public func covers(_ range: Range<Int64>) -> Bool {
        for i in chunks(covering: range) {
            switch states[i] {
            case .present: continue
            case .fetching(_, let filled):
                let needed = min(range.upperBound, size) - self.range(ofChunk: i).lowerBound
                if filled < needed { return false }
            case .missing, .failed: return false
            }
        }
        return true
    }

    /// Whether chunk `i` needs a fetch started (missing, or its last fetch failed).
    public func needsFetch(_ i: Int) -> Bool {
        switch states[i] {
        case .missing, .failed: return true
        case .fetching, .present: return false
        }
    }

    /// Marks chunk `i` as being fetched and returns the fetch's number.
    public mutating func startFetch(_ i: Int) -> UInt64 {
        fetchCounter += 1
        states[i] = .fetching(attempt: fetchCounter, filled: 0)
        return fetchCounter
    }

    /// Records that fetch `attempt` of chunk `i` has written `filled` bytes from the chunk's start.
    public mutating func progress(_ i: Int, attempt: UInt64, filled: Int64) {
        guard case .fetching(let a, _) = states[i], a == attempt else { return }
        states[i] = .fetching(attempt: a, filled: filled)
    }

    /// Fetch `attempt` of chunk `i` wrote the whole chunk.
    public mutating func finish(_ i: Int, attempt: UInt64) {
        guard case .fetching(let a, _) = states[i], a == attempt else { return }
        states[i] = .present
    }

    /// Fetch `attempt` of chunk `i` failed.
    public mutating func fail(_ i: Int, attempt: UInt64, reason: String) {
        guard case .fetching(let a, _) = states[i], a == attempt else { return }
        states[i] = .failed(attempt: a, reason: reason)
    }

    /// The fetch numbers a reader of `range` waits on now (those of its chunks in flight).
    public func attempts(covering range: Range<Int64>) -> [Int: UInt64] {
        var out: [Int: UInt64] = [:]
        for i in chunks(covering: range) {
            if case .fetching(let a, _) = states[i] { out[i] = a }
        }
        return out
    }

    /// Why a reader that waited on `waited` (chunk → fetch number) must give up: one of those fetches failed.
    public func failure(of waited: [Int: UInt64]) -> String? {
        for (i, a) in waited {
            if case .failed(let f, let reason) = states[i], f == a { return reason }
        }
        return nil
    }
}
