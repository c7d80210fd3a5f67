/// Deterministic damage to real `_metadata` files.
///
/// Random bytes almost never get past the magic number, so they exercise nothing. Mutating real
/// files keeps most of the structure intact and puts the damage deep inside handles, lengths and
/// the Java-serialized trailer, which is where a reader can go wrong. A seeded generator makes
/// every failing input reproducible from its seed and iteration number.
public struct MetadataMutator: Sendable {
    /// What was done to an input; used to report results by mutation.
    public enum Mutation: String, CaseIterable, Sendable {
        case bitFlips = "bit flips"
        case truncation
        case insertion
        case deletion
        case lengthField = "length-field corruption"
        case duplication = "chunk duplication"
        case splice = "splice of two files"
    }

    private var state: UInt64

    public init(seed: UInt64) { state = seed }

    /// SplitMix64: small, fast and good enough to spread mutations evenly.
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// A value in `0..<bound` (`bound` > 0).
    public mutating func below(_ bound: Int) -> Int { Int(next() % UInt64(max(bound, 1))) }

    /// One mutated copy of `corpus[i]` for a random `i`, and what was done to it.
    public mutating func mutate(_ corpus: [[UInt8]]) -> (bytes: [UInt8], mutation: Mutation) {
        let source = corpus[below(corpus.count)]
        let mutation = Mutation.allCases[below(Mutation.allCases.count)]
        var bytes = source
        guard !bytes.isEmpty else { return (bytes, mutation) }
        switch mutation {
        case .bitFlips:
            for _ in 0...below(8) {
                let index = below(bytes.count)
                bytes[index] ^= UInt8(1 << below(8))
            }
        case .truncation:
            bytes.removeSubrange(below(bytes.count)...)
        case .insertion:
            let at = below(bytes.count + 1)
            let count = 1 + below(16)
            bytes.insert(contentsOf: (0..<count).map { _ in UInt8(truncatingIfNeeded: next()) }, at: at)
        case .deletion:
            let at = below(bytes.count)
            let count = min(1 + below(32), bytes.count - at)
            bytes.removeSubrange(at..<(at + count))
        case .lengthField:
            // Overwrite what may be an int or short length with an extreme value: 2^31-1, -1, 2^31, 2^16-1 …
            let extremes: [UInt32] = [0x7FFF_FFFF, 0xFFFF_FFFF, 0x8000_0000, 0x0000_FFFF, 0x0001_0000, 0x00FF_FFFF]
            let value = below(4) == 0 ? UInt32(truncatingIfNeeded: next()) : extremes[below(extremes.count)]
            let width = below(2) == 0 ? 4 : 2
            let at = below(bytes.count)
            for k in 0..<width where at + k < bytes.count {
                bytes[at + k] = UInt8(truncatingIfNeeded: value >> UInt32(8 * (width - 1 - k)))
            }
        case .duplication:
            let at = below(bytes.count)
            let count = min(1 + below(64), bytes.count - at)
            let chunk = Array(bytes[at..<(at + count)])
            bytes.insert(contentsOf: chunk, at: below(bytes.count + 1))
        case .splice:
            let other = corpus[below(corpus.count)]
            let cut = below(bytes.count)
            let from = other.isEmpty ? 0 : below(other.count)
            bytes = Array(bytes[..<cut]) + Array(other[from...])
        }
        return (bytes, mutation)
    }

    /// A stable name for an error's kind: what the reader expected, with numbers blanked out,
    /// so thousands of failures group into a readable table.
    public static func kind(of expected: String) -> String {
        var out = ""
        var lastWasDigit = false
        for character in expected {
            if character.isNumber {
                if !lastWasDigit { out.append("#") }
                lastWasDigit = true
            } else {
                out.append(character)
                lastWasDigit = false
            }
        }
        return out
    }
}
