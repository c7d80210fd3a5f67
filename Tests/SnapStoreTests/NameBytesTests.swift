import Foundation
import GRDB
import Logging
import SnapStore
import Synchronization
import XCTest
#if canImport(Glibc)
import Glibc
#endif

/// Writes `content` to `base/rel` whatever the bytes of its names and its depth, creating directories: with its own
/// openat/mkdirat, so the state under test does not depend on the code under test.
func writeRaw(_ base: String, _ rel: [UInt8], _ content: String) throws {
    var parts = rel.split(separator: UInt8(ascii: "/")).map { Array($0) + [0] }
    let last = parts.removeLast()
    var fd = open(base, O_RDONLY | O_DIRECTORY)
    for p in parts {
        let c = p.map { CChar(bitPattern: $0) }
        _ = mkdirat(fd, c, 0o755)
        let next = openat(fd, c, O_RDONLY | O_DIRECTORY)
        close(fd)
        fd = next
    }
    defer { close(fd) }
    let f = openat(fd, last.map { CChar(bitPattern: $0) }, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
    guard f >= 0 else { throw POSIXError(POSIXErrorCode(rawValue: errno)!) }
    defer { close(f) }
    XCTAssertEqual(content.utf8.count, Array(content.utf8).withUnsafeBytes { write(f, $0.baseAddress, $0.count) })
}

/// The names in a directory exactly as the kernel lists them.
func rawNames(_ dir: String) -> [[UInt8]] {
    guard let d = opendir(dir) else { return [] }
    defer { closedir(d) }
    var out: [[UInt8]] = []
    while let ent = readdir(d) {
        let n = withUnsafeBytes(of: ent.pointee.d_name) { Array($0.prefix(while: { $0 != 0 })) }
        if n != Array(".".utf8) && n != Array("..".utf8) { out.append(n) }
    }
    return out.sorted { $0.lexicographicallyPrecedes($1) }
}

func runTool(_ tool: String, _ args: [String], in dir: URL) throws -> (status: Int32, output: String) {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: tool)
    p.arguments = args
    p.currentDirectoryURL = dir
    let pipe = Pipe()
    p.standardOutput = pipe; p.standardError = pipe
    try p.run()
    let data = pipe.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    return (p.terminationStatus, String(decoding: data, as: UTF8.self))
}

final class NameBytesTests: XCTestCase {
    let ffFE: [UInt8] = [0xFF, 0xFE]

    func testEveryByteStringRoundTripsAndValidNamesAreThemselves() {
        var rng = SystemRandomNumberGenerator()
        var cases: [[UInt8]] = [[0xFF, 0xFE], Array("caf\u{E9}".utf8), Array("\u{F7AB}".utf8), Array("\u{F780}x\u{F7FF}".utf8),
                                [0xC0, 0x80], [0xED, 0xA0, 0x80], [0xE2, 0x82], [0xF4, 0x90, 0x80, 0x80], [0xEF, 0x9E], [0x80],
                                Array("a\u{F7FF}".utf8) + [0xFF]]
        for _ in 0..<2000 {
            cases.append((0..<Int.random(in: 1...12, using: &rng)).map { _ in UInt8.random(in: 1...255, using: &rng) })
        }
        for b in cases {
            let s = PathBytes.string(kernel: b)
            XCTAssertEqual(PathBytes.kernel(s), b, "bytes \(b) come back")
            XCTAssertEqual(PathBytes.string(kernel: PathBytes.kernel(s)), s)
            XCTAssertEqual(PathBytes.withCPath(s) { Array(UnsafeRawBufferPointer(start: $0, count: strlen($0))) }, b)
        }
        XCTAssertNotEqual(PathBytes.string(kernel: [0xFF, 0xFE]), PathBytes.string(kernel: [0xFF, 0xFD]), "String(decoding:) makes both U+FFFD U+FFFD")
        // Swift's == and hashing are canonical equivalence: two names that differ only in normalization stay two.
        let composed = PathBytes.string(kernel: Array("\u{E9}".utf8)), decomposed = PathBytes.string(kernel: Array("e\u{301}".utf8))
        XCTAssertEqual("\u{E9}", "e\u{301}", "what Swift compares")
        XCTAssertNotEqual(composed, decomposed)
        XCTAssertEqual(Set([composed, decomposed]).count, 2)
        XCTAssertEqual(composed, "\u{E9}", "NFC text is its own String")
        XCTAssertEqual(PathBytes.kernel(decomposed), Array("e\u{301}".utf8))
        XCTAssertEqual(PathBytes.string(kernel: Array("caf\u{E9}/e\u{301}/x".utf8)),
                       "caf\u{E9}/" + PathBytes.string(kernel: Array("e\u{301}".utf8)) + "/x", "a path decodes name by name")
        for valid in ["state", "caf\u{E9}", "\u{301}e", "日本", "a\u{1F600}"] {
            XCTAssertEqual(PathBytes.string(kernel: Array(valid.utf8)), valid)
            XCTAssertFalse(PathBytes.isEscaped(valid))
        }
        XCTAssertTrue(PathBytes.isEscaped(PathBytes.string(kernel: Array("\u{F7AB}".utf8))), "a genuine escape-range scalar is escaped too")
        XCTAssertEqual(PathBytes.printable(PathBytes.string(kernel: Array("x".utf8) + [0xFF, 0xFE])), "x\\xFF\\xFE")
        XCTAssertEqual(PathBytes.printable("a\nb\\c\u{7F}"), "a\\x0Ab\\\\c\\x7F", "one line, and a backslash is not an escape")
        XCTAssertEqual(PathBytes.printable("caf\u{E9}"), "caf\u{E9}")
    }

    /// A state file named with bytes 0xff 0xfe is kept with exactly those bytes by every format, by export and import.
    func testNonUTF8NameSurvivesEveryFormatExportAndImport() throws {
        let w = try Workspace(job: false)
        defer { _ = try? runTool("/bin/rm", ["-rf", w.root.path], in: URL(fileURLWithPath: "/")) }
        try writeRaw(w.state.path, ffFE, "not utf-8")
        try writeRaw(w.state.path, Array("dir/".utf8) + [0x80] + Array("\u{F7AB}".utf8), "genuine private use")
        try writeRaw(w.state.path, Array("dir/ok".utf8), "plain")
        try writeRaw(w.state.path, Array("dir/\u{E9}".utf8), "composed")
        try writeRaw(w.state.path, Array("dir/e\u{301}".utf8), "decomposed")
        XCTAssertEqual(symlink(PathBytes.kernel(PathBytes.string(kernel: ffFE)).map { CChar(bitPattern: $0) } + [0], w.state.path + "/link"), 0)
        let name = PathBytes.string(kernel: ffFE)
        let want = try w.stateChecksums()
        XCTAssertEqual(want.count, 5, "every file scanned, under its own name")
        XCTAssertEqual(want[name], Store.sha256(ofFile: w.state.path, name))

        for format in SnapshotFormat.allCases {
            let s = try w.snapshot(format, kind: .user, label: "s-\(format.rawValue)")
            XCTAssertEqual(try w.contentChecksums(s.name), want, "\(format.rawValue)")
            let link = try w.store.entries(of: s.id).first { $0.path == "link" }
            XCTAssertEqual(link?.symlinkTarget, name)
            if format == .canonical {
                let tree = w.storeURL.appendingPathComponent(s.directory!)
                XCTAssertTrue(rawNames(tree.path + "/files").contains(ffFE), "the in-store tree has the name's bytes")
                let check = try runTool("/usr/bin/sha256sum", ["-c", "SHA256SUMS"], in: tree)
                XCTAssertEqual(check.status, 0, check.output)
                let manifest = try JSONSerialization.jsonObject(with: Data(contentsOf: tree.appendingPathComponent("MANIFEST.json"))) as! [String: Any]
                let entries = manifest["entries"] as! [[String: Any]]
                XCTAssertTrue(entries.contains { $0["pathBase64"] as? String == Data(ffFE).base64EncodedString() }, "the manifest says the bytes")
            }
            let out = w.root.appendingPathComponent("export-\(format.rawValue)")
            _ = try w.store.export(s.name, to: out)
            XCTAssertEqual(rawNames(out.path + "/files"), [Array("dir".utf8), Array("link".utf8), ffFE])
            XCTAssertEqual(rawNames(out.path + "/files/dir"), [Array("ok".utf8), [0x80] + Array("\u{F7AB}".utf8), Array("\u{E9}".utf8),
                                                                Array("e\u{301}".utf8)].sorted { $0.lexicographicallyPrecedes($1) })
            XCTAssertEqual(Store.sha256(ofFile: out.path + "/files/dir", PathBytes.string(kernel: Array("e\u{301}".utf8))),
                           want["dir/" + PathBytes.string(kernel: Array("e\u{301}".utf8))])
            var target = [CChar](repeating: 0, count: 64)
            XCTAssertEqual(readlink(out.path + "/files/link", &target, 64), 2)
            XCTAssertEqual(target.prefix(2).map { UInt8(bitPattern: $0) }, ffFE)
            XCTAssertEqual(Store.sha256(ofFile: out.path + "/files", name), want[name])
            let check = try runTool("/usr/bin/sha256sum", ["-c", "SHA256SUMS"], in: out)
            XCTAssertEqual(check.status, 0, check.output)
            let back = try w.store.importCanonical(from: out, label: "back-\(format.rawValue)")
            XCTAssertEqual(try w.contentChecksums(back.name), want)
        }
        let converted = try w.store.convert("s-native-incremental", to: .canonical, label: "conv")
        XCTAssertEqual(try w.contentChecksums(converted.name), want, "convert keeps the names' bytes")
        let convCheck = try runTool("/usr/bin/sha256sum", ["-c", "SHA256SUMS"], in: w.storeURL.appendingPathComponent(converted.directory!))
        XCTAssertEqual(convCheck.status, 0, convCheck.output)
        let v = try w.store.verify()
        XCTAssertTrue(v.clean, "nothing looks unreferenced: \(v)")
        for s in try w.store.snapshots() { try w.store.delete(s.name) }
        let after = try w.store.verify()
        XCTAssertEqual(after.pendingRemovals, 0)
        XCTAssertTrue(after.clean)
        XCTAssertEqual(rawNames(w.storeURL.path + "/canonical"), [], "every canonical tree removed")
    }

    /// verify and gc see a stray file under the store's own directories by its bytes, say them, and remove it.
    func testVerifyAndGCFindAndRemoveAStrayFileWithANonUTF8Name() throws {
        let w = try Workspace()
        try w.write("a", "1")
        let s = try w.snapshot(.canonical, kind: .user, label: "c")
        let stray = Array("\(s.directory!)/files/".utf8) + ffFE
        try writeRaw(w.storeURL.path, stray, "stray")
        let name = PathBytes.string(kernel: stray)
        let v = try w.store.verify()
        XCTAssertEqual(v.unreferenced, [name])
        XCTAssertEqual(v.unreferencedBase64?[name], Data(stray).base64EncodedString())
        let json = try JSONSerialization.jsonObject(with: try JSONEncoder().encode(v)) as? [String: Any]
        XCTAssertEqual((json?["unreferencedBase64"] as? [String: String])?.values.first, Data(stray).base64EncodedString())
        let g = try w.store.gc(grace: 0)
        XCTAssertEqual(g.removedFiles, [name])
        XCTAssertEqual(g.pathsBase64?[name], Data(stray).base64EncodedString())
        XCTAssertEqual(rawNames(w.storeURL.path + "/" + s.directory! + "/files"), [Array("a".utf8)])
        XCTAssertTrue(try w.store.verify().clean)
    }

    func testSHA256SUMSEscapesNamesAsGNUDoes() throws {
        let w = try Workspace()
        defer { _ = try? runTool("/bin/rm", ["-rf", w.root.path], in: URL(fileURLWithPath: "/")) }
        for n in ["new\nline", "back\\slash", "carriage\rreturn", "both\\and\nmore", "plain"] { try w.write(n, "content of \(n)") }
        try writeRaw(w.state.path, Array("bad\n".utf8) + ffFE, "non-utf8 and newline")
        let s = try w.snapshot(.canonical, kind: .user, label: "c")
        let tree = w.storeURL.appendingPathComponent(s.directory!)
        let inStore = try runTool("/usr/bin/sha256sum", ["-c", "SHA256SUMS"], in: tree)
        XCTAssertEqual(inStore.status, 0, inStore.output)
        XCTAssertEqual(inStore.output.components(separatedBy: ": OK").count - 1, 6)
        let sums = try Data(contentsOf: tree.appendingPathComponent("SHA256SUMS"))
        XCTAssertEqual(sums.split(separator: UInt8(ascii: "\n")).count, 6, "one line per file")
        let out = w.root.appendingPathComponent("export")
        _ = try w.store.export(s.name, to: out)
        let exported = try runTool("/usr/bin/sha256sum", ["-c", "--strict", "SHA256SUMS"], in: out)
        XCTAssertEqual(exported.status, 0, exported.output)
    }

    /// FIFOs and device nodes are kept by every format and by export and import; a socket, which nothing can
    /// restore, is recorded as not held, with why, in the report, the event and the manifest.
    func testFIFOsAndDevicesAreKeptAndSocketsAreRecordedAsNotHeld() throws {
        let w = try Workspace()
        try w.write("data", "d")
        XCTAssertEqual(mkfifo(w.state.path + "/pipe", 0o640), 0)
        XCTAssertEqual(mknod(w.state.path + "/null", S_IFCHR | 0o644, dev_t(1 << 8 | 3)), 0, "as root")
        let sock = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(sock) }
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        let sockPath = w.state.path + "/sock"
        withUnsafeMutableBytes(of: &addr.sun_path) { raw in for (i, b) in sockPath.utf8.enumerated() { raw[i] = b } }
        let bound = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(sock, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) } }
        XCTAssertEqual(bound, 0)

        func checkSpecials(_ entries: [SnapshotEntry], _ what: String) {
            XCTAssertEqual(entries.map(\.path), ["data", "null", "pipe"], what)
            let pipe = entries.first { $0.path == "pipe" }, null = entries.first { $0.path == "null" }
            XCTAssertEqual(pipe?.type, .fifo, what)
            XCTAssertEqual(pipe.map { $0.mode & 0o177777 }, UInt32(S_IFIFO) | 0o640, what)
            XCTAssertEqual(null?.type, .device, what)
            XCTAssertEqual(null.map { $0.mode & 0o170000 }, UInt32(S_IFCHR), what)
            XCTAssertEqual(null?.rdev, 1 << 8 | 3, what)
        }
        for format in SnapshotFormat.allCases {
            let s = try w.snapshot(format, kind: .user, label: "s-\(format.rawValue)")
            checkSpecials(try w.store.entries(of: s.id), format.rawValue)
            let r = try w.store.report(s.name)
            XCTAssertEqual(r.notHeld.map(\.path), ["sock"], format.rawValue)
            XCTAssertEqual(r.notHeld.map(\.type), ["socket"])
            XCTAssertTrue(r.notHeld[0].reason.contains("socket"))
            let event = try w.store.events().last { $0.type == "snapshot" && $0.snapshot == s.name }
            XCTAssertTrue(event?.detail.contains("not held: 1 (sock (socket)") == true, event?.detail ?? "no event")
        }
        let converted = try w.store.convert("s-native-incremental", to: .canonical, label: "conv")
        checkSpecials(try w.store.entries(of: converted.id), "convert")
        XCTAssertEqual(try w.store.report(converted.name).notHeld.map(\.path), ["sock"], "what the source did not hold is still said")
        let out = w.root.appendingPathComponent("export")
        _ = try w.store.export("s-native-full", to: out)
        var st = stat()
        XCTAssertEqual(lstat(out.path + "/files/pipe", &st), 0)
        XCTAssertEqual(st.st_mode & S_IFMT, S_IFIFO)
        XCTAssertEqual(lstat(out.path + "/files/null", &st), 0)
        XCTAssertEqual(st.st_mode & S_IFMT, S_IFCHR)
        XCTAssertEqual(UInt64(st.st_rdev), 1 << 8 | 3)
        let m = try CanonicalManifest.load(from: out)
        XCTAssertEqual(m.notHeld?.map(\.path), ["sock"])
        let imported = try w.store.importCanonical(from: out, label: "imp")
        checkSpecials(try w.store.entries(of: imported.id), "import")
        XCTAssertEqual(try w.store.report(imported.name).notHeld.map(\.type), ["socket"])
        let json = try JSONEncoder().encode(try w.store.report("s-canonical"))
        XCTAssertTrue(String(decoding: json, as: UTF8.self).contains("\"notHeld\""))
    }

    /// A path longer than PATH_MAX in the state is kept by every format, exported, and deleted without leaving anything.
    func testPathLongerThanPathMaxIsKeptAndRemoved() throws {
        let w = try Workspace(job: false)
        defer { _ = try? runTool("/bin/rm", ["-rf", w.root.path], in: URL(fileURLWithPath: "/")) }
        let component = String(repeating: "d", count: 250)
        let deep = Array(repeating: component, count: 20).joined(separator: "/") + "/file"
        XCTAssertGreaterThan(deep.utf8.count + w.storeURL.path.utf8.count, Int(PATH_MAX))
        try writeRaw(w.state.path, Array(deep.utf8), "deep")
        try w.write("top", "t")
        let want = try w.stateChecksums()
        XCTAssertEqual(want.count, 2)
        XCTAssertNotNil(want[deep])
        for format in SnapshotFormat.allCases {
            let s = try w.snapshot(format, kind: .user, label: "s-\(format.rawValue)")
            XCTAssertEqual(try w.contentChecksums(s.name), want, format.rawValue)
            let out = w.root.appendingPathComponent("export-\(format.rawValue)")
            _ = try w.store.export(s.name, to: out)
            XCTAssertEqual(Store.sha256(ofFile: out.path + "/files", deep), want[deep])
            // (`sha256sum -c` itself opens each file by its whole path, so it cannot check this one: a limit of the tool.)
        }
        XCTAssertTrue(try w.store.verify().clean)
        for s in try w.store.snapshots() { try w.store.delete(s.name) }
        let v = try w.store.verify()
        XCTAssertEqual(v.pendingRemovals, 0, "no removal left to fail at every open")
        XCTAssertTrue(v.clean)
        XCTAssertEqual(rawNames(w.storeURL.path + "/canonical"), [])
    }

    func testRemovalThatKeepsFailingStaysJournalledAndIsLoggedOnce() throws {
        let w = try Workspace()
        // A directory where the journal says a file is: unlink fails with EISDIR every time.
        try FileManager.default.createDirectory(atPath: w.storeURL.path + "/objects/zz/stuck", withIntermediateDirectories: true)
        try Data("x".utf8).write(to: URL(fileURLWithPath: w.storeURL.path + "/objects/zz/stuck/inside"))
        let db = try DatabaseQueue(path: w.storeURL.appendingPathComponent("catalog.sqlite").path)
        try db.write { try $0.execute(sql: "INSERT INTO removals(path, is_directory, queued_at) VALUES ('objects/zz/stuck', 0, 0)") }
        try db.close()
        let log = LogCapture()
        let store = try Store.open(at: w.storeURL, logger: Logger(label: "test") { _ in log })
        store.drainRemovals()
        store.drainRemovals()
        _ = try Store.open(at: w.storeURL, logger: Logger(label: "test") { _ in log }).verify()
        XCTAssertEqual(log.errors.filter { $0.contains("objects/zz/stuck") }.count, 1, "\(log.errors)")
        XCTAssertEqual(try store.verify().pendingRemovals, 1, "kept in the journal")
        try FileManager.default.removeItem(atPath: w.storeURL.path + "/objects/zz/stuck")
        store.drainRemovals()
        XCTAssertEqual(try store.verify().pendingRemovals, 0)
    }
}

/// Collects error-level log messages.
final class LogCapture: LogHandler, @unchecked Sendable {
    private let lines = Mutex<[String]>([])
    var errors: [String] { lines.withLock { $0 } }
    var metadata: Logger.Metadata = [:]
    var logLevel: Logger.Level = .trace
    subscript(metadataKey key: String) -> Logger.Metadata.Value? { get { metadata[key] } set { metadata[key] = newValue } }
    func log(event: LogEvent) {
        if event.level >= .error { lines.withLock { $0.append(event.message.description) } }
    }
}
