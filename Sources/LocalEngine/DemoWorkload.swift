import Foundation
import Synchronization

/// A live state directory that behaves like a log-structured key-value store: immutable segment files are appended,
/// older ones are merged now and then, and a MANIFEST names the live segments. Incremental snapshots of it really
/// share files, as a RocksDB checkpoint's would.
public final class DemoWorkload: Sendable {
    public let directory: URL
    private let stopped = Mutex(false)
    private let state = Mutex(State())

    struct State {
        var nextSegment = 1
        var live: [String] = []
        var rng = SplitMix64(seed: 42)
    }

    public init(directory: URL, seed: UInt64 = 42) {
        self.directory = directory
        state.withLock { $0.rng = SplitMix64(seed: seed) }
    }

    /// Picks up segments left by an earlier run, so a restarted demo keeps appending to the same store.
    public func prepare() throws {
        try FileManager.default.createDirectory(at: directory.appendingPathComponent("segments"), withIntermediateDirectories: true)
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory.appendingPathComponent("segments").path)) ?? []
        let segs = names.filter { $0.hasPrefix("seg-") && $0.hasSuffix(".dat") }.sorted()
        state.withLock { s in
            s.live = segs
            s.nextSegment = (segs.compactMap { Int($0.dropFirst(4).dropLast(4)) }.max() ?? 0) + 1
        }
        if segs.isEmpty { for _ in 0..<8 { try step() } }
    }

    /// Appends one segment; every eighth step merges the four oldest into one.
    public func step() throws {
        try state.withLock { s in
            let name = String(format: "seg-%08d.dat", s.nextSegment)
            s.nextSegment += 1
            let bytes = 16 * 1024 + Int(s.rng.next() % (48 * 1024))
            try write(segment: name, bytes: bytes, rng: &s.rng)
            s.live.append(name)
            if s.nextSegment % 8 == 0 && s.live.count >= 6 {
                let merged = String(format: "seg-%08d.dat", s.nextSegment)
                s.nextSegment += 1
                let old = Array(s.live.prefix(4))
                var data = Data()
                for o in old { data.append((try? Data(contentsOf: segURL(o))) ?? Data()) }
                try data.write(to: segURL(merged), options: .atomic)
                s.live.removeFirst(4)
                s.live.insert(merged, at: 0)
                try writeManifest(s.live)
                for o in old { try? FileManager.default.removeItem(at: segURL(o)) }
            } else {
                try writeManifest(s.live)
            }
        }
    }

    /// Runs `step` every `period` seconds on its own thread until `stop`.
    public func start(period: TimeInterval) {
        let t = Thread { [self] in
            while !stopped.withLock({ $0 }) {
                try? step()
                Thread.sleep(forTimeInterval: period)
            }
        }
        t.name = "snapfs-demo-workload"
        t.start()
    }

    public func stop() { stopped.withLock { $0 = true } }

    private func segURL(_ n: String) -> URL { directory.appendingPathComponent("segments").appendingPathComponent(n) }

    private func write(segment: String, bytes: Int, rng: inout SplitMix64) throws {
        var out = [UInt8]()
        out.reserveCapacity(bytes)
        while out.count < bytes {
            let key = rng.next() % 100_000
            out.append(contentsOf: Array("key-\(key)=value-\(rng.next())\n".utf8))
        }
        try Data(out).write(to: segURL(segment), options: .atomic)
    }

    private func writeManifest(_ live: [String]) throws {
        try Data((live.joined(separator: "\n") + "\n").utf8).write(to: directory.appendingPathComponent("MANIFEST"), options: .atomic)
    }
}

/// A small deterministic generator, so a demo or a test workload can be replayed.
public struct SplitMix64: Sendable {
    var state: UInt64
    public init(seed: UInt64) { state = seed }
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
