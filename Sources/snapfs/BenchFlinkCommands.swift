import ArgumentParser
import FlinkEngine
import FlinkMetadata
import FlinkMetadataWriter
import LocalEngine
import Foundation
import SnapStore
#if canImport(Glibc)
import Glibc
#endif

/// Builds a large Flink store from a real one, for `Scripts/bench-scale`: every job's checkpoints are the real
/// store's `_metadata` files of one job, copied and renumbered (`chk-1` … `chk-N`, the checkpoint id inside
/// rewritten to match), each pointing at its own job's copy of the shared files and at the files of its own
/// `chk-N`, which are copied with it. `_metadata` is written last, as Flink writes it. The result is a store Flink
/// could have written at `--into`: absolute handles name `file:<into>/…`, so it needs no path map.
struct BenchFlinkPopulateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "bench-flink-populate",
                                                    abstract: "Build a Flink store of many checkpoints from a real one (for benchmarks).",
                                                    shouldDisplay: false)
    @Option(help: "A real Flink store (e.g. Tests/Fixtures/flink-2.3-layouts/forst).") var fixture: String
    @Option(help: "Where Flink wrote that store (the prefix of its absolute handles), e.g. file:/srv/flink-layouts/forst.") var writtenAt: String
    @Option(help: "An empty or missing directory to build the new store in.") var into: String
    @Option(help: "Jobs.") var jobs = 20
    @Option(help: "Checkpoints in all, spread evenly over the jobs.") var checkpoints: Int

    struct Template {
        var metadata: CheckpointMetadata
        var directory: String
        var files: [FileReference]
    }

    func validate() throws {
        guard jobs >= 1, checkpoints >= jobs else { throw ValidationError("need 1 <= --jobs <= --checkpoints") }
    }

    func run() throws {
        let source = URL(fileURLWithPath: fixture).standardizedFileURL.path
        let target = URL(fileURLWithPath: into).standardizedFileURL.path
        let fm = FileManager.default
        if fm.fileExists(atPath: target), !(try fm.contentsOfDirectory(atPath: target)).isEmpty {
            CLI.fail(.badInput("\(target) is not empty")); throw ExitCode(2)
        }
        let map = PathMap([(from: writtenAt, to: source)])
        // The job with the most checkpoints gives the templates, oldest first.
        let checkpointsDir = source + "/checkpoints"
        guard let jobDirs = try? fm.contentsOfDirectory(atPath: checkpointsDir) else {
            CLI.fail(.badInput("\(checkpointsDir) is not a directory of jobs")); throw ExitCode(2)
        }
        func chks(_ job: String) -> [Int] {
            ((try? fm.contentsOfDirectory(atPath: checkpointsDir + "/" + job)) ?? []).compactMap { name in
                name.hasPrefix("chk-") && fm.fileExists(atPath: "\(checkpointsDir)/\(job)/\(name)/_metadata") ? Int(name.dropFirst(4)) : nil
            }.sorted()
        }
        guard let templateJob = jobDirs.sorted().max(by: { chks($0).count < chks($1).count }), !chks(templateJob).isEmpty else {
            CLI.fail(.badInput("no checkpoint with a _metadata under \(checkpointsDir)")); throw ExitCode(2)
        }
        let templateJobDir = checkpointsDir + "/" + templateJob
        var templates: [Template] = []
        for n in chks(templateJob) {
            let dir = "\(templateJobDir)/chk-\(n)"
            guard let data = fm.contents(atPath: dir + "/_metadata") else { throw ExitCode(8) }
            let metadata = try MetadataReader.read(data)
            templates.append(Template(metadata: metadata, directory: dir, files: metadata.referencedFiles(metadataDirectory: dir, pathMap: map)))
        }
        var rng = SplitMix64(seed: 42)
        let started = Date()
        var written = 0
        for j in 0..<jobs {
            let job = String(format: "%016llx%016llx", rng.next(), rng.next())
            let jobDir = "\(target)/checkpoints/\(job)"
            let count = checkpoints / jobs + (j < checkpoints % jobs ? 1 : 0)
            var copiedShared = Set<String>()
            for k in 1...count {
                let t = templates[(k - 1) % templates.count]
                let chk = "\(jobDir)/chk-\(k)"
                try fm.createDirectory(atPath: chk, withIntermediateDirectories: true)
                var mapping: [String: HandleLocation] = [:]
                for f in t.files {
                    let new: String
                    if let rel = PathBytes.relative(f.path, under: t.directory) {
                        new = chk + "/" + rel
                        try copy(f.path, new)
                    } else if let rel = PathBytes.relative(f.path, under: templateJobDir) {
                        new = jobDir + "/" + rel
                        if copiedShared.insert(rel).inserted { try copy(f.path, new) }
                    } else if let rel = PathBytes.relative(f.path, under: source) {
                        new = target + "/" + rel
                        if !fm.fileExists(atPath: new) { try copy(f.path, new) }
                    } else {
                        continue  // outside the store: left as it is
                    }
                    mapping[f.path] = .localFile(new)
                }
                var metadata = t.metadata
                metadata.checkpointId = Int64(k)
                let (bytes, rewrite) = try HandleRewrite.rewrittenMetadata(metadata, metadataDirectory: t.directory, pathMap: map, mapping: mapping)
                guard rewrite.unmappedFiles.allSatisfy({ !$0.hasPrefix(source) }) else {
                    CLI.fail(.corrupt("\(t.directory)/_metadata: files not rewritten: \(rewrite.unmappedFiles)")); throw ExitCode(8)
                }
                try Data(bytes).write(to: URL(fileURLWithPath: chk + "/_metadata"))
                written += 1
            }
        }
        sync()
        print(String(format: "wrote %d checkpoints of %d jobs in %.2f s", written, jobs, Date().timeIntervalSince(started)))
    }

    private func copy(_ from: String, _ to: String) throws {
        let fm = FileManager.default
        try fm.createDirectory(atPath: (to as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        if fm.fileExists(atPath: to) { try fm.removeItem(atPath: to) }
        try fm.copyItem(atPath: from, toPath: to)
    }
}

/// Times passes over a Flink store the way a mount's watcher runs them (one importer, so passes share what the last
/// walk saw), for `Scripts/bench-scale`: with nothing new, and with one new checkpoint.
struct BenchFlinkRefreshCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "bench-flink-refresh",
                                                    abstract: "Time Flink store passes (for benchmarks).",
                                                    shouldDisplay: false)
    @OptionGroup var options: StoreOptions
    @Option(help: "Passes with nothing new to time.") var passes = 20
    @Option(help: "A snapshot directory to copy as one new checkpoint after the idle passes (its _metadata last).") var add: String?
    @Flag(help: "Print JSON.") var json = false

    struct Result: Codable {
        var idleFullSeconds: Double
        var idleQuickSeconds: Double
        var idleQuickPasses: Int
        var idleMetadataReads: Int
        var newCheckpointSeconds: Double?
        var newCheckpointMetadataReads: Int?
        var snapshots: Int
    }

    func run() throws {
        let store = try options.open()
        let engine = try CLI.run { () throws(StoreError) in try FlinkEngine.forStore(store) }
        let importer = engine.importer
        _ = try CLI.run { () throws(StoreError) in try importer.refresh() }
        func timed() throws -> Double {
            let t = Date()
            _ = try CLI.run { () throws(StoreError) in try importer.refresh() }
            return Date().timeIntervalSince(t)
        }
        // A full pass with nothing new (a fresh importer walks), then quick ones once the directories have settled.
        let fresh = FlinkImporter(store: store, settings: engine.settings)
        let t = Date()
        _ = try CLI.run { () throws(StoreError) in try fresh.refresh() }
        let full = Date().timeIntervalSince(t)
        Thread.sleep(forTimeInterval: 2.1)
        _ = try timed()
        let reads = importer.activity.metadataReads
        let quick0 = importer.activity.quickPasses
        var times: [Double] = []
        for _ in 0..<passes { times.append(try timed()) }
        var result = Result(idleFullSeconds: full, idleQuickSeconds: times.sorted()[times.count / 2],
                            idleQuickPasses: importer.activity.quickPasses - quick0,
                            idleMetadataReads: importer.activity.metadataReads - reads, snapshots: try store.snapshots().count)
        if let add {
            let src = store.root.path + "/" + add
            let parent = (src as NSString).deletingLastPathComponent
            let numbers = try FileManager.default.contentsOfDirectory(atPath: parent).compactMap { $0.hasPrefix("chk-") ? Int($0.dropFirst(4)) : nil }
            let dst = "\(parent)/chk-\((numbers.max() ?? 0) + 1)"
            try FileManager.default.createDirectory(atPath: dst, withIntermediateDirectories: false)
            try FileManager.default.copyItem(atPath: src + "/_metadata", toPath: dst + "/_metadata")
            let before = importer.activity.metadataReads
            result.newCheckpointSeconds = try timed()
            result.newCheckpointMetadataReads = importer.activity.metadataReads - before
        }
        if json {
            let e = JSONEncoder()
            e.outputFormatting = [.prettyPrinted, .sortedKeys]
            print(String(decoding: try e.encode(result), as: UTF8.self))
        } else {
            print(String(format: "%d snapshots: idle full pass %.4f s, idle quick pass %.6f s (median of %d, %d quick, %d _metadata read)",
                         result.snapshots, result.idleFullSeconds, result.idleQuickSeconds, passes, result.idleQuickPasses, result.idleMetadataReads))
            if let s = result.newCheckpointSeconds {
                print(String(format: "one new checkpoint: %.4f s, %d _metadata read", s, result.newCheckpointMetadataReads ?? -1))
            }
        }
    }
}
