import Foundation
import XCTest
#if canImport(Glibc)
import Glibc
#endif

/// LazyFS (../shared/tools/lazyfs): a FUSE file system that keeps written data in its own cache until the file is
/// fsynced. Killing it loses exactly what a power cut loses: every byte not yet fsynced. Names (create, unlink)
/// reach its backing directory at once.
final class LazyFS {
    /// A cut at an exact point, configured when LazyFS starts: LazyFS kills itself right after (or before) the
    /// `occurrence`-th `op` on the file `path` (a path in the backing directory, as LazyFS sees it).
    struct Fault: CustomStringConvertible {
        var op: String
        var path: String
        var occurrence: Int
        var timing = "after"
        var description: String { "\(timing) \(op) #\(occurrence) of \(path)" }
    }

    let executable: String
    let backing: String
    let mountpoint: String
    let work: String
    private(set) var process: Process?
    private var starts = 0

    var fifo: String { work + "/faults.fifo" }
    var log: String { work + "/lazyfs-\(starts).log" }

    init(executable: String, work: String) throws {
        self.executable = executable
        self.work = work
        backing = work + "/backing"
        mountpoint = work + "/lazy"
        for d in [backing, mountpoint] { try FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true) }
        // LazyFS keys its cache by the backing file's inode number; ext4 hands a deleted file's number to the next
        // new file, and an fsynced object was then found empty after a cut. tmpfs never reuses a number.
        let r = runTool("/bin/mount", ["-t", "tmpfs", "-o", "size=2g,mode=0755", "snapfs-lazyfs-backing", backing])
        if r.status != 0 { throw NSError(domain: "LazyFS", code: 4, userInfo: [NSLocalizedDescriptionKey: "cannot mount tmpfs for LazyFS's backing directory: \(r.output)"]) }
    }

    /// Unmounts the backing tmpfs; everything on it is gone.
    func removeBacking() {
        if isMountpoint(backing) { _ = runTool("/bin/umount", [backing]) }
    }

    /// The path LazyFS matches faults against for a path under the mountpoint.
    func faultPath(_ underMount: String) -> String { backing + "/" + underMount }

    /// Mounts, with `faults` armed; returns once the mount answers.
    func start(faults: [Fault] = []) throws {
        starts += 1
        // Kept simple for LazyFS's sake: no eviction (with it, fsynced bytes once came back wrong after a cut, and
        // parallel writers hung it), a cache far larger than a round writes (a full cache sends writes straight to
        // the backing file), and one thread (-s). Pre-allocating 128 MiB takes about a second and a half.
        var config = """
        [faults]
        fifo_path="\(fifo)"
        [cache]
        apply_eviction=false
        [cache.simple]
        custom_size="128mb"
        blocks_per_page=1
        [filesystem]
        log_all_operations=\(ProcessInfo.processInfo.environment["SNAPFS_POWER_LAZYFS_LOG"] == "1")
        logfile="\(log).ops"

        """
        for f in faults {
            config += """

            [[injection]]
            type="clear-cache"
            timing="\(f.timing)"
            op="\(f.op)"
            from="\(f.path)"
            occurrence=\(f.occurrence)
            crash=true

            """
        }
        let configPath = work + "/lazyfs-\(starts).toml"
        try config.write(toFile: configPath, atomically: true, encoding: .utf8)
        _ = FileManager.default.createFile(atPath: log, contents: nil)
        let p = Process()
        p.executableURL = URL(fileURLWithPath: executable)
        p.arguments = [mountpoint, "--config-path", configPath, "-o", "allow_other", "-o", "modules=subdir", "-o", "subdir=\(backing)", "-f", "-s"]
        let h = FileHandle(forWritingAtPath: log)!
        p.standardOutput = h
        p.standardError = h
        p.standardInput = FileHandle.nullDevice
        try p.run()
        process = p
        let deadline = Date().addingTimeInterval(60)
        while Date() < deadline {
            var v = statvfs()
            if isMountpoint(mountpoint) && statvfs(mountpoint, &v) == 0 && logText().contains("waiting for fault commands") { return }
            if !p.isRunning { break }
            usleep(20_000)
        }
        throw NSError(domain: "LazyFS", code: 1, userInfo: [NSLocalizedDescriptionKey: "LazyFS did not mount: \(logText().suffix(2000))"])
    }

    func logText() -> String { (try? String(contentsOfFile: log, encoding: .utf8)) ?? "" }

    /// Whether an armed fault fired (LazyFS then killed itself).
    var faultFired: Bool { logText().contains("Triggered fault condition") }

    var isRunning: Bool { process?.isRunning ?? false }

    /// Drops every byte not yet fsynced, through the FIFO, and waits until LazyFS has done it.
    func clearCache() {
        let fd = open(fifo, O_WRONLY | O_NONBLOCK | O_CLOEXEC)
        guard fd >= 0 else { return }
        let cmd = "lazyfs::clear-cache\n"
        _ = cmd.withCString { write(fd, $0, strlen($0)) }
        close(fd)
        let deadline = Date().addingTimeInterval(5)
        while Date() < deadline && !logText().contains("received 'lazyfs::clear-cache'") { usleep(10_000) }
        usleep(50_000)
    }

    /// A clean unmount (LazyFS writes nothing down on its way out: unsynced data is dropped as by a cut).
    func stop() {
        guard let p = process else { return }
        if isMountpoint(mountpoint) { _ = runTool("/bin/fusermount3", ["-u", mountpoint]) }
        let deadline = Date().addingTimeInterval(10)
        while p.isRunning && Date() < deadline { usleep(20_000) }
        kill()
    }

    /// SIGKILL: whatever the cache held is gone. Then the dead mount is cleared.
    func kill() {
        if let p = process {
            if p.isRunning { Glibc.kill(p.processIdentifier, SIGKILL) }
            p.waitUntilExit()
        }
        process = nil
        if isMountpoint(mountpoint) { _ = runTool("/bin/fusermount3", ["-u", "-z", mountpoint]) }
    }

    /// Where the executable is: `SNAPFS_LAZYFS`, else built (once) from the LazyFS sources beside the checkout into
    /// `.build/lazyfs` (the sources may be on a read-only copy, so the build goes to the package's build directory).
    static func locate() throws -> String {
        let env = ProcessInfo.processInfo.environment
        if let exe = env["SNAPFS_LAZYFS"] {
            guard FileManager.default.isExecutableFile(atPath: exe) else {
                throw NSError(domain: "LazyFS", code: 2, userInfo: [NSLocalizedDescriptionKey: "SNAPFS_LAZYFS=\(exe) is not an executable (SNAPFS_POWER_CUTS=0 skips the power-cut test)"])
            }
            return exe
        }
        let package = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let built = package.appendingPathComponent(".build/lazyfs/lazyfs/build/lazyfs").path
        if FileManager.default.isExecutableFile(atPath: built) { return built }
        let script = env["SNAPFS_LAZYFS_SRC"].map { $0 + "/build.sh" }
            ?? package.deletingLastPathComponent().appendingPathComponent("shared/tools/lazyfs/build.sh").path
        guard FileManager.default.isExecutableFile(atPath: script) else {
            throw NSError(domain: "LazyFS", code: 2, userInfo: [NSLocalizedDescriptionKey:
                "no LazyFS: \(script) not found (set SNAPFS_LAZYFS to the executable or SNAPFS_LAZYFS_SRC to its source directory, or SNAPFS_POWER_CUTS=0 to skip the power-cut test)"])
        }
        let r = runTool(script, [package.appendingPathComponent(".build/lazyfs").path], timeout: 900)
        guard r.status == 0, FileManager.default.isExecutableFile(atPath: built) else {
            throw NSError(domain: "LazyFS", code: 3, userInfo: [NSLocalizedDescriptionKey: "building LazyFS failed (SNAPFS_POWER_CUTS=0 skips the power-cut test): \(r.output.suffix(2000))"])
        }
        return built
    }
}

/// Whether something is mounted at `path` (field 5 of /proc/self/mountinfo).
func isMountpoint(_ path: String) -> Bool {
    guard let text = try? String(contentsOfFile: "/proc/self/mountinfo", encoding: .utf8) else { return false }
    return text.split(separator: "\n").contains { $0.split(separator: " ").count > 4 && $0.split(separator: " ")[4] == path }
}

/// Runs a command to completion with a deadline; output and errors together.
func runTool(_ exe: String, _ args: [String], timeout: TimeInterval = 120) -> (status: Int32, output: String) {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: exe)
    p.arguments = args
    let outURL = URL(fileURLWithPath: NSTemporaryDirectory()).appendingPathComponent("snapfs-power-\(UUID().uuidString).out")
    _ = FileManager.default.createFile(atPath: outURL.path, contents: nil)
    defer { try? FileManager.default.removeItem(at: outURL) }
    let h = FileHandle(forWritingAtPath: outURL.path)!
    p.standardOutput = h
    p.standardError = h
    p.standardInput = FileHandle.nullDevice
    let done = DispatchSemaphore(value: 0)
    p.terminationHandler = { _ in done.signal() }
    do { try p.run() } catch { return (-1, "cannot run \(exe): \(error)") }
    if done.wait(timeout: .now() + timeout) == .timedOut {
        kill(p.processIdentifier, SIGKILL)
        _ = done.wait(timeout: .now() + 10)
    }
    try? h.close()
    return (p.isRunning ? -9 : p.terminationStatus, (try? String(contentsOf: outURL, encoding: .utf8)) ?? "")
}
