import ArgumentParser
import Foundation
import LocalEngine
import SnapStore

/// Runs snapshots, deletes, moves and conversions on a local store until killed. The crash tests SIGKILL it at
/// random instants and then check that reopening the store completed or rolled back whatever it was doing.
/// After each snapshot it writes `EXPECT/<id>.json`: the checksum of every state file the snapshot captured.
struct StressCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "stress", abstract: "Churn a local store until killed (for crash tests).",
                                                    shouldDisplay: false)
    @OptionGroup var options: StoreOptions
    @Option(help: "Seed for the operation sequence.") var seed: UInt64 = 1
    @Option(help: "Directory for the expectations of each snapshot.") var expect: String
    @Option(help: "Stop after this many operations (0: run until killed).") var operations = 0

    func run() throws {
        let store = try options.open()
        let engine = try CLI.run { () throws(StoreError) in try LocalEngine.forStore(store) }
        var rng = SplitMix64(seed: seed)
        try FileManager.default.createDirectory(atPath: expect, withIntermediateDirectories: true)
        var n = 0
        while operations == 0 || n < operations {
            n += 1
            let op = rng.next() % 10
            let snaps = (try? store.snapshots()) ?? []
            do {
                switch op {
                case 0...3:
                    try mutateState(engine.stateDirectory, &rng)
                    let expected = try checksums(of: engine.stateDirectory)
                    let formats: [SnapshotFormat] = [.nativeIncremental, .nativeIncremental, .nativeFull, .canonical]
                    let s = try engine.takeSnapshot(format: formats[Int(rng.next() % 4)], kind: rng.next() % 2 == 0 ? .checkpoint : .user,
                                                    label: nil, progress: nil)
                    let data = try JSONEncoder().encode(expected)
                    try data.write(to: URL(fileURLWithPath: expect).appendingPathComponent("\(s.id).json"), options: .atomic)
                case 4...6 where snaps.count > 3:
                    let victim = snaps[Int(rng.next() % UInt64(snaps.count))]
                    _ = try? store.delete(victim.name)
                case 7...8 where !snaps.isEmpty:
                    let s = snaps[Int(rng.next() % UInt64(snaps.count))]
                    _ = try? store.rename(s.name, to: "r\(rng.next() % 1_000_000)")
                case 9 where !snaps.isEmpty:
                    let s = snaps[Int(rng.next() % UInt64(snaps.count))]
                    let c = try store.convert(s.name, to: rng.next() % 2 == 0 ? .nativeFull : .canonical, label: nil)
                    let src = URL(fileURLWithPath: expect).appendingPathComponent("\(s.id).json")
                    if let d = try? Data(contentsOf: src) {
                        try d.write(to: URL(fileURLWithPath: expect).appendingPathComponent("\(c.id).json"), options: .atomic)
                    }
                default:
                    _ = store.applyRetention(keep: 4)
                }
            } catch let e as StoreError {
                FileHandle.standardError.write(Data("stress: \(e)\n".utf8))
            }
        }
    }

    private func mutateState(_ dir: URL, _ rng: inout SplitMix64) throws {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: dir.path)) ?? []
        for _ in 0..<Int(1 + rng.next() % 5) {
            let r = rng.next() % 3
            if r == 0, let victim = names.isEmpty ? nil : names[Int(rng.next() % UInt64(names.count))] {
                try? FileManager.default.removeItem(at: dir.appendingPathComponent(victim))
            } else {
                let name = "f\(rng.next() % 400).dat"
                let size = Int(rng.next() % 20_000)
                var bytes = [UInt8](repeating: 0, count: size)
                for i in stride(from: 0, to: size, by: 8) { bytes[i] = UInt8(truncatingIfNeeded: rng.next()) }
                try Data(bytes).write(to: dir.appendingPathComponent(name), options: .atomic)
            }
        }
    }

    private func checksums(of dir: URL) throws -> [String: String] {
        var out: [String: String] = [:]
        for e in try FileTreeSource(root: dir).scan() where e.type == .file {
            out[e.path] = Store.sha256(ofFile: dir.path, e.path) ?? "unreadable"
        }
        return out
    }
}
