import FlinkMetadata

/// Where a rewritten handle points: the two ways `_metadata` can name a file.
public enum HandleLocation: Hashable, Sendable {
    /// A FILE handle (type 2), written verbatim: a URI as Flink writes them (`file:/…`, `s3://bucket/…`).
    case absolute(String)
    /// A RELATIVE handle (type 6), resolved by Flink against the directory that holds `_metadata` — Flink's
    /// relocatable savepoint layout: the snapshot directory can move and the handle still finds its file.
    case relative(String)

    /// An absolute local file, written as Flink writes a qualified local path (`file:/srv/…`).
    public static func localFile(_ path: String) -> HandleLocation { .absolute("file:" + path) }
}

/// Why a rewrite was refused.
public struct HandleRewriteError: Error, CustomStringConvertible, Sendable, Equatable {
    /// The file (as resolved) whose new location cannot be written.
    public let file: String
    public let reason: String

    public var description: String { "cannot point \(file) to its new location: \(reason)" }
}

/// What a rewrite did.
public struct HandleRewrite: Sendable, Equatable {
    /// The snapshot with its handles pointing at the new locations; everything else as it was.
    public var metadata: CheckpointMetadata
    /// How many handles now point somewhere else.
    public var rewrittenHandles: Int
    /// Files the snapshot names that the mapping does not mention (resolved, sorted, unique). Their handles
    /// are unchanged; a caller building a self-contained copy wants this empty.
    public var unmappedFiles: [String]
    /// Mapping entries that matched no handle (sorted): usually a sign the keys were resolved differently.
    public var unusedMappings: [String]

    /// Points every file-backed handle named in `mapping` at its new location.
    ///
    /// - Parameters:
    ///   - metadataDirectory: the directory holding `_metadata` now; relative handles are resolved against it.
    ///   - pathMap: how absolute handles map to where their files are now (as for `referencedFiles`).
    ///   - mapping: resolved path (exactly as `referencedFiles(metadataDirectory:pathMap:)` and
    ///     `StateHandle.resolvedFilePath` give it) → new location. Relative locations are relative to the
    ///     directory the rewritten `_metadata` will be written to.
    ///
    /// File and relative handles (wherever they nest: keyed, operator, channel, changelog parts) take the new
    /// location's kind and keep their size. Segment handles of file merging can only be absolute, since Flink
    /// has no relative segment. Inline state is not a file and never changes; neither do file merging's
    /// managed directory names. Pure: reads no file and writes none.
    public static func rewrite(
        _ metadata: CheckpointMetadata, metadataDirectory: String, pathMap: PathMap = .identity,
        mapping: [String: HandleLocation]
    ) throws(HandleRewriteError) -> HandleRewrite {
        var rewriter = Rewriter(directory: metadataDirectory, pathMap: pathMap, mapping: mapping)
        var result = metadata
        for o in result.operators.indices {
            if let coordinator = result.operators[o].coordinatorState {
                result.operators[o].coordinatorState = try rewriter.handle(coordinator)
            }
            for s in result.operators[o].subtasks.indices {
                var subtask = result.operators[o].subtasks[s]
                subtask.managedOperatorState = try rewriter.optional(subtask.managedOperatorState)
                subtask.rawOperatorState = try rewriter.optional(subtask.rawOperatorState)
                subtask.managedKeyedState = try rewriter.optional(subtask.managedKeyedState)
                subtask.rawKeyedState = try rewriter.optional(subtask.rawKeyedState)
                for c in subtask.inputChannelState.indices {
                    subtask.inputChannelState[c] = try rewriter.handle(subtask.inputChannelState[c])
                }
                for c in subtask.resultSubpartitionState.indices {
                    subtask.resultSubpartitionState[c] = try rewriter.handle(subtask.resultSubpartitionState[c])
                }
                result.operators[o].subtasks[s] = subtask
            }
        }
        return HandleRewrite(
            metadata: result, rewrittenHandles: rewriter.rewritten, unmappedFiles: rewriter.unmapped.sorted(),
            unusedMappings: Set(mapping.keys).subtracting(rewriter.used).sorted())
    }

    /// `rewrite`, then the `_metadata` bytes of the result, in the version the snapshot was read.
    public static func rewrittenMetadata(
        _ metadata: CheckpointMetadata, metadataDirectory: String, pathMap: PathMap = .identity,
        mapping: [String: HandleLocation]
    ) throws -> (bytes: [UInt8], rewrite: HandleRewrite) {
        let rewrite = try rewrite(metadata, metadataDirectory: metadataDirectory, pathMap: pathMap, mapping: mapping)
        return (try MetadataWriter.encode(rewrite.metadata), rewrite)
    }

    /// A relative location Flink resolves inside the snapshot directory: `new Path(dir, relative)` would read
    /// a leading `scheme:` as a URI and `..` would leave the directory the layout promises to be self-contained.
    static func checkRelative(_ relative: String, for file: String) throws(HandleRewriteError) {
        let segments = relative.split(separator: "/", omittingEmptySubsequences: false)
        let why: String? =
            if relative.isEmpty { "an empty relative path" }
            else if relative.hasPrefix("/") { "a relative path that starts with \"/\" (\(relative))" }
            else if relative.contains(":") { "a relative path with \":\", which Flink would read as a URI scheme (\(relative))" }
            else if relative.contains("\\") { "a relative path with \"\\\", which Flink turns into \"/\" (\(relative))" }
            else if segments.contains(where: { $0 == ".." || $0 == "." || $0.isEmpty }) {
                "a relative path with an empty, \".\" or \"..\" segment (\(relative))"
            } else { nil }
        if let why { throw HandleRewriteError(file: file, reason: why) }
    }
}

/// The walk: rebuilds each handle with its file-backed leaves replaced.
private struct Rewriter {
    let directory: String
    let pathMap: PathMap
    let mapping: [String: HandleLocation]
    var rewritten = 0
    var unmapped = Set<String>()
    var used = Set<String>()

    init(directory: String, pathMap: PathMap, mapping: [String: HandleLocation]) {
        self.directory = directory
        self.pathMap = pathMap
        self.mapping = mapping
    }

    /// The new location of a file-backed handle, recording what was and was not mapped.
    private mutating func target(of handle: StateHandle) -> (path: String, location: HandleLocation?)? {
        guard let path = handle.resolvedFilePath(metadataDirectory: directory, pathMap: pathMap) else { return nil }
        guard let location = mapping[path] else {
            unmapped.insert(path)
            return (path, nil)
        }
        used.insert(path)
        return (path, location)
    }

    mutating func handle(_ handle: StateHandle) throws(HandleRewriteError) -> StateHandle {
        switch handle {
        case .file(_, let size), .relativeFile(_, let size):
            guard case let (path, location?)? = target(of: handle) else { return handle }
            rewritten += 1
            switch location {
            case .absolute(let uri): return .file(path: uri, size: size)
            case .relative(let relative):
                try HandleRewrite.checkRelative(relative, for: path)
                return .relativeFile(relativePath: relative, size: size)
            }
        case .fileSegment(var segment):
            guard case let (path, location?)? = target(of: handle) else { return handle }
            guard case .absolute(let uri) = location else {
                throw HandleRewriteError(
                    file: path, reason: "a file-merging segment can only name its physical file by absolute path")
            }
            rewritten += 1
            segment.physicalPath = uri
            return .fileSegment(segment)
        case .byteStream, .emptyFileSegment, .changelogInMemory:
            return handle
        case .keyGroups(var keyGroups):
            keyGroups.delegate = try optional(keyGroups.delegate)
            return .keyGroups(keyGroups)
        case .incrementalRemote(var incremental):
            incremental.metadata = try optional(incremental.metadata)
            for i in incremental.sharedState.indices {
                incremental.sharedState[i].handle = try optional(incremental.sharedState[i].handle)
            }
            for i in incremental.privateState.indices {
                incremental.privateState[i].handle = try optional(incremental.privateState[i].handle)
            }
            return .incrementalRemote(incremental)
        case .changelog(var changelog):
            for i in changelog.materialized.indices { changelog.materialized[i] = try self.handle(changelog.materialized[i]) }
            for i in changelog.nonMaterialized.indices {
                changelog.nonMaterialized[i] = try self.handle(changelog.nonMaterialized[i])
            }
            return .changelog(changelog)
        case .changelogFiles(var files):
            for i in files.parts.indices { files.parts[i].handle = try optional(files.parts[i].handle) }
            return .changelogFiles(files)
        case .operatorState(var state):
            state.delegate = try optional(state.delegate)
            return .operatorState(state)
        case .channel(var channel):
            channel.delegate = try optional(channel.delegate)
            return .channel(channel)
        }
    }

    mutating func optional(_ handle: StateHandle?) throws(HandleRewriteError) -> StateHandle? {
        guard let handle else { return nil }
        return try self.handle(handle)
    }
}
