import FlinkMetadata
import FlinkMetadataFuzzing
import FlinkMetadataWriter
import Foundation

/// Feeds mutated real `_metadata` files to the reader and reports what happened. Every mutant the reader
/// accepts is also written back, and must read back as the same value.
///
/// Usage: flink-metadata-fuzz ITERATIONS SEED FILE...
/// A crash or hang stops this process, which is the failure being looked for; the last line
/// printed before it names the iteration, so `SEED` and that number reproduce the input.
let arguments = CommandLine.arguments
guard arguments.count >= 4, let iterations = Int(arguments[1]), let seed = UInt64(arguments[2]) else {
    FileHandle.standardError.write(Data("usage: flink-metadata-fuzz ITERATIONS SEED METADATA_FILE...\n".utf8))
    exit(2)
}
var corpus: [[UInt8]] = []
for path in arguments.dropFirst(3) {
    guard let data = FileManager.default.contents(atPath: path) else {
        FileHandle.standardError.write(Data("cannot read \(path)\n".utf8))
        exit(2)
    }
    // Every input of the corpus must decode: otherwise mutations measure nothing.
    do { _ = try MetadataReader.read(data) } catch {
        FileHandle.standardError.write(Data("corpus file \(path) does not decode: \(error)\n".utf8))
        exit(1)
    }
    corpus.append([UInt8](data))
}

var mutator = MetadataMutator(seed: seed)
var decoded = 0
var errors: [String: Int] = [:]
var byMutation: [String: (decoded: Int, rejected: Int)] = [:]
var badOffsets = 0
var writerMismatches = 0
let start = Date()
for iteration in 0..<iterations {
    let (input, mutation) = mutator.mutate(corpus)
    if iteration % 10_000 == 0 {
        // Unbuffered, so the last line before a crash names the iteration.
        FileHandle.standardError.write(Data("iteration \(iteration) (seed \(seed))\n".utf8))
    }
    do {
        let metadata = try MetadataReader.read(input)
        // Whatever decodes must also resolve without trouble.
        _ = metadata.referencedFiles(metadataDirectory: "/store/chk-1", pathMap: .identity)
        decoded += 1
        do {
            if try MetadataReader.read(try MetadataWriter.encode(metadata)) != metadata { writerMismatches += 1 }
        } catch {
            writerMismatches += 1
            FileHandle.standardError.write(Data("iteration \(iteration): accepted, but not written back: \(error)\n".utf8))
        }
        byMutation[mutation.rawValue, default: (0, 0)].decoded += 1
    } catch {
        if error.offset < 0 || error.offset > input.count { badOffsets += 1 }
        errors[MetadataMutator.kind(of: error.expected), default: 0] += 1
        byMutation[mutation.rawValue, default: (0, 0)].rejected += 1
    }
}
let seconds = Date().timeIntervalSince(start)
print("inputs: \(iterations), decoded: \(decoded), rejected with MetadataError: \(iterations - decoded), crashes: 0, hangs: 0")
print(String(format: "time: %.1f s (%.0f inputs/s)", seconds, Double(iterations) / max(seconds, 0.001)))
print("errors whose offset lies outside the input: \(badOffsets)")
print("accepted inputs the writer did not write back to the same value: \(writerMismatches)")
print("by mutation (decoded / rejected):")
for (name, counts) in byMutation.sorted(by: { $0.key < $1.key }) {
    print("  \(name): \(counts.decoded) / \(counts.rejected)")
}
print("rejections by error kind (\(errors.count) kinds):")
for (kind, count) in errors.sorted(by: { $0.value > $1.value }) {
    print("  \(count)\t\(kind)")
}
exit(badOffsets == 0 && writerMismatches == 0 ? 0 : 1)
