import FlinkMetadata
import FlinkMetadataWriter
import Foundation

/// Makes a self-contained copy of one Flink snapshot directory, outside any store: every file its
/// `_metadata` needs is copied into NEW_DIR and named relative to it, and NEW_DIR/_metadata says so.
/// A developer tool for checking the writer against a real Flink restore (`flink run -s NEW_DIR`).
///
/// Usage: flink-metadata-rewrite self-contained SNAPSHOT_DIR NEW_DIR [--absolute] [--map FROM=TO]...
/// `--map` rewrites absolute paths as the store's path map does (e.g. file:/srv/flink-store=/tmp/store).
/// `--absolute` names the copies by absolute path in NEW_DIR instead of relatively (see `SelfContainedPlan.Naming`).
func fail(_ message: String, _ status: Int32 = 1) -> Never {
    FileHandle.standardError.write(Data("flink-metadata-rewrite: \(message)\n".utf8))
    exit(status)
}

var arguments = Array(CommandLine.arguments.dropFirst())
guard arguments.count >= 3, arguments[0] == "self-contained" else {
    fail("usage: flink-metadata-rewrite self-contained SNAPSHOT_DIR NEW_DIR [--absolute] [--map FROM=TO]...", 2)
}
let source = URL(fileURLWithPath: arguments[1]).standardizedFileURL.path
let target = URL(fileURLWithPath: arguments[2]).standardizedFileURL.path
var rules: [(from: String, to: String)] = []
var absolute = false
arguments.removeFirst(3)
while !arguments.isEmpty {
    let flag = arguments.removeFirst()
    if flag == "--absolute" { absolute = true; continue }
    guard flag == "--map", let rule = arguments.first, let equals = rule.firstIndex(of: "=") else {
        fail("unexpected argument \(flag); expected --map FROM=TO", 2)
    }
    arguments.removeFirst()
    rules.append((String(rule[..<equals]), String(rule[rule.index(after: equals)...])))
}

let fm = FileManager.default
guard let data = fm.contents(atPath: source + "/_metadata") else { fail("cannot read \(source)/_metadata") }
let metadata: CheckpointMetadata
do { metadata = try MetadataReader.read(data) } catch { fail("\(source)/_metadata: \(error)") }
let plan: SelfContainedPlan
do {
    plan = try SelfContainedPlan.make(
        metadata, metadataDirectory: source, pathMap: PathMap(rules), naming: absolute ? .absolute(directory: target) : .relative)
} catch {
    fail("\(error)")
}
guard !fm.fileExists(atPath: target) else { fail("\(target) exists; give a new directory") }

// Every source must be there with the length Flink's rule asks, before anything is written.
for copy in plan.copies {
    guard let size = (try? fm.attributesOfItem(atPath: copy.source))?[.size] as? Int64 else {
        fail("\(copy.source) is missing (named by \(source)/_metadata)")
    }
    guard copy.kind.isExact ? size == copy.size : size >= copy.size else {
        fail("\(copy.source) is \(size) bytes; the snapshot needs \(copy.kind.isExact ? "exactly" : "at least") \(copy.size)")
    }
}
do {
    try fm.createDirectory(atPath: target, withIntermediateDirectories: true)
    var copied = Set<String>()
    for copy in plan.copies where copied.insert(copy.relativePath).inserted {
        try fm.copyItem(atPath: copy.source, toPath: target + "/" + copy.relativePath)
        try FileHandle(forUpdating: URL(fileURLWithPath: target + "/" + copy.relativePath)).synchronize()
    }
    let metadataPath = target + "/_metadata"
    guard fm.createFile(atPath: metadataPath, contents: Data(plan.metadata)) else { fail("cannot write \(metadataPath)") }
    try FileHandle(forUpdating: URL(fileURLWithPath: metadataPath)).synchronize()
} catch {
    fail("copying into \(target): \(error)")
}
print("\(target): version \(metadata.version), checkpoint \(metadata.checkpointId), \(Set(plan.copies.map(\.relativePath)).count) files copied, \(plan.rewrite.rewrittenHandles) handles now \(absolute ? "absolute in it" : "relative")")
