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

/// One file-merging segment: a byte range of a physical file, the file resolved as `resolvedFilePath` resolves it.
/// Two handles naming the same range are the same segment.
public struct SegmentKey: Hashable, Sendable, Comparable {
    public let path: String
    public let start: Int64
    public let size: Int64

    public init(path: String, start: Int64, size: Int64) {
        self.path = path; self.start = start; self.size = size
    }

    public static func < (a: SegmentKey, b: SegmentKey) -> Bool {
        (a.path, a.start, a.size) < (b.path, b.start, b.size)
    }
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
    ///   - segments: file-merging segments that now are files of their own, holding exactly the segment's bytes →
    ///     where that file is. Such a segment handle becomes a file or relative handle of the segment's size.
    ///
    /// File and relative handles (wherever they nest: keyed, operator, channel, changelog parts) take the new
    /// location's kind and keep their size. A segment handle named in `segments` becomes a file handle; one named
    /// only by its physical file in `mapping` stays a segment and can only be absolute, since Flink has no
    /// relative segment. A file-merging operator handle (type 17) whose delegate is no longer a segment becomes a
    /// plain one (type 4), dropping the managed directories it kept alive; with `unmerge`, one with no state at
    /// all (Flink's empty file-merging handle: the empty segment, no named state) is dropped, since it names
    /// nothing but those directories. Inline state is not a file and never changes. Pure: reads no file and
    /// writes none.
    public static func rewrite(
        _ metadata: CheckpointMetadata, metadataDirectory: String, pathMap: PathMap = .identity,
        mapping: [String: HandleLocation], segments: [SegmentKey: HandleLocation] = [:], unmerge: Bool = false
    ) throws(HandleRewriteError) -> HandleRewrite {
        var rewriter = Rewriter(directory: metadataDirectory, pathMap: pathMap, mapping: mapping, segments: segments)
        var result = metadata
        for o in result.operators.indices {
            if let coordinator = result.operators[o].coordinatorState {
                result.operators[o].coordinatorState = try rewriter.handle(coordinator)
            }
            for s in result.operators[o].subtasks.indices {
                var subtask = result.operators[o].subtasks[s]
                subtask.managedOperatorState = try rewriter.optional(subtask.managedOperatorState)
                subtask.rawOperatorState = try rewriter.optional(subtask.rawOperatorState)
                if unmerge {
                    subtask.managedOperatorState = Self.withoutEmptyMerged(subtask.managedOperatorState)
                    subtask.rawOperatorState = Self.withoutEmptyMerged(subtask.rawOperatorState)
                }
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
        mapping: [String: HandleLocation], segments: [SegmentKey: HandleLocation] = [:], unmerge: Bool = false
    ) throws -> (bytes: [UInt8], rewrite: HandleRewrite) {
        let rewrite = try rewrite(
            metadata, metadataDirectory: metadataDirectory, pathMap: pathMap, mapping: mapping, segments: segments,
            unmerge: unmerge)
        return (try MetadataWriter.encode(rewrite.metadata), rewrite)
    }

    /// Nil for Flink's empty file-merging operator handle (`EmptyFileMergingOperatorStreamStateHandle`: no named
    /// state, the empty segment): restoring it reads nothing, and what it names (the managed directories) is not
    /// part of a copy. Any other handle as it is.
    static func withoutEmptyMerged(_ handle: StateHandle?) -> StateHandle? {
        guard case .operatorState(let state)? = handle, state.fileMerging != nil, state.states.isEmpty,
              case .emptyFileSegment? = state.delegate else { return handle }
        return nil
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
    let segments: [SegmentKey: HandleLocation]
    var rewritten = 0
    var unmapped = Set<String>()
    var used = Set<String>()

    init(directory: String, pathMap: PathMap, mapping: [String: HandleLocation], segments: [SegmentKey: HandleLocation]) {
        self.directory = directory
        self.pathMap = pathMap
        self.mapping = mapping
        self.segments = segments
    }

    /// A file handle of `size` at `location`.
    private func fileHandle(_ location: HandleLocation, size: Int64, for path: String) throws(HandleRewriteError) -> StateHandle {
        switch location {
        case .absolute(let uri): return .file(path: uri, size: size)
        case .relative(let relative):
            try HandleRewrite.checkRelative(relative, for: path)
            return .relativeFile(relativePath: relative, size: size)
        }
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
            return try fileHandle(location, size: size, for: path)
        case .fileSegment(var segment):
            if let path = handle.resolvedFilePath(metadataDirectory: directory, pathMap: pathMap),
               let location = segments[SegmentKey(path: path, start: segment.startPosition, size: segment.size)] {
                rewritten += 1
                return try fileHandle(location, size: segment.size, for: path)
            }
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
            switch state.delegate {
            case .fileSegment?, .emptyFileSegment?: break
            default:
                // Type 17 must delegate to a segment: over a file of its own it is a plain operator handle (type 4).
                state.fileMerging = nil
            }
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
