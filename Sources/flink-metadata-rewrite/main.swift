import FlinkMetadata
import FlinkMetadataWriter
import Foundation

/// Makes a self-contained copy of one Flink snapshot directory, outside any store: every file its
/// `_metadata` needs is copied into NEW_DIR and named relative to it, and NEW_DIR/_metadata says so.
/// A developer tool for checking the writer against a real Flink restore (`flink run -s NEW_DIR`).
///
/// Usage: flink-metadata-rewrite self-contained SNAPSHOT_DIR NEW_DIR [--absolute] [--map FROM=TO]...
///        flink-metadata-rewrite repair SNAPSHOT_DIR SEARCH_DIR... (FLINK-39964: relative handles resolved to the
///        wrong directory are pointed at SEARCH_DIR/<relative path>; the original is kept as _metadata.orig)
/// `--map` rewrites absolute paths as the store's path map does (e.g. file:/srv/flink-store=/tmp/store).
/// `--absolute` names the copies by absolute path in NEW_DIR instead of relatively (see `SelfContainedPlan.Naming`).
func fail(_ message: String, _ status: Int32 = 1) -> Never {
    FileHandle.standardError.write(Data("flink-metadata-rewrite: \(message)\n".utf8))
    exit(status)
}

var arguments = Array(CommandLine.arguments.dropFirst())
if arguments.first == "repair" { repair(Array(arguments.dropFirst())) }
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
    guard copy.accepts(sourceLength: size) else {
        fail("\(copy.source) is \(size) bytes; the snapshot needs \(copy.offset == nil && copy.kind.isExact ? "exactly" : "at least") \(copy.requiredSourceLength)")
    }
}
do {
    try fm.createDirectory(atPath: target, withIntermediateDirectories: true)
    var copied = Set<String>()
    for copy in plan.copies where copied.insert(copy.relativePath).inserted {
        try copy.write(to: target + "/" + copy.relativePath)
        try FileHandle(forUpdating: URL(fileURLWithPath: target + "/" + copy.relativePath)).synchronize()
    }
    let metadataPath = target + "/_metadata"
    guard fm.createFile(atPath: metadataPath, contents: Data(plan.metadata)) else { fail("cannot write \(metadataPath)") }
    try FileHandle(forUpdating: URL(fileURLWithPath: metadataPath)).synchronize()
} catch {
    fail("copying into \(target): \(error)")
}
print("\(target): version \(metadata.version), checkpoint \(metadata.checkpointId), \(Set(plan.copies.map(\.relativePath)).count) files copied, \(plan.rewrite.rewrittenHandles) handles now \(absolute ? "absolute in it" : "relative")")

/// `repair SNAPSHOT_DIR SEARCH_DIR...`: rewrites the handles `RepairPlan` finds, keeping the original beside it.
func repair(_ arguments: [String]) -> Never {
    guard arguments.count >= 2 else { fail("usage: flink-metadata-rewrite repair SNAPSHOT_DIR SEARCH_DIR...", 2) }
    let fm = FileManager.default
    let directory = URL(fileURLWithPath: arguments[0]).standardizedFileURL.path
    let search = arguments.dropFirst().map { URL(fileURLWithPath: $0).standardizedFileURL.path }
    guard let data = fm.contents(atPath: directory + "/_metadata") else { fail("cannot read \(directory)/_metadata") }
    let plan: RepairPlan
    do {
        plan = try RepairPlan.make(
            try MetadataReader.read(data), metadataDirectory: directory, searchDirectories: search,
            fileSize: { (try? fm.attributesOfItem(atPath: $0))?[.size] as? Int64 })
    } catch { fail("\(directory)/_metadata: \(error)") }
    guard plan.missing.isEmpty else {
        fail("refused: \(plan.missing.count) needed files are gone, e.g. \(plan.missing.prefix(3).map { "\($0.path) (\($0.size) bytes)" }.joined(separator: ", "))")
    }
    guard let bytes = plan.metadata else { print("\(directory): nothing to repair"); exit(0) }
    do {
        try fm.copyItem(atPath: directory + "/_metadata", toPath: directory + "/_metadata.orig")
        try Data(bytes).write(to: URL(fileURLWithPath: directory + "/_metadata.new"))
        try FileHandle(forUpdating: URL(fileURLWithPath: directory + "/_metadata.new")).synchronize()
    } catch { fail("writing \(directory)/_metadata: \(error)") }
    guard rename(directory + "/_metadata.new", directory + "/_metadata") == 0 else {
        fail("replacing \(directory)/_metadata: \(String(cString: strerror(errno)))")
    }
    for fix in plan.fixes { print("  \(fix.resolvedPath) -> \(fix.foundAt)") }
    print("\(directory): \(plan.fixes.count) handles now name their files where they are; original kept as _metadata.orig")
    exit(0)
}
