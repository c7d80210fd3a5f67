import ArgumentParser
import Foundation
import FlinkEngine
import Logging
import SnapFUSE
import SnapFileOps
import SnapStore
#if canImport(Glibc)
import Glibc
#endif

struct MountCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "mount",
        abstract: "Mount a store as a directory; runs in the foreground until unmounted (fusermount3 -u) or signalled.",
        discussion: """
        Snapshots appear as directories; `rm -r S` and `mv S T` become checked delete and move; writing \
        MOUNT/.snapfs/trigger/FORMAT or `mkdir MOUNT/NAME` takes a snapshot. For /etc/fstab and systemd see \
        Mount/README.md. Options can also be given as -o state=DIR,checkpoint-interval=S,retain=N,\
        stage-window=S,allow_other,clear-stale.
        """)

    @Argument(help: "The store directory.") var store: String
    @Argument(help: "An empty directory to mount on.") var mountpoint: String
    @Option(help: "The live state directory, if not the one the store was created with.") var state: String?
    @Option(help: "Seconds between system checkpoints while mounted (default: the store's setting; 0: none).") var checkpointInterval: Double?
    @Option(help: "System checkpoints to keep (default: the store's setting).") var retain: Int?
    @Option(help: "Seconds staged unlinks inside a snapshot stay hidden without `rmdir S`.") var stageWindow: Double = 60
    @Flag(help: "Let other users see the mount (needs user_allow_other in /etc/fuse.conf for non-root).") var allowOther = false
    @Flag(help: "Clear a stale mount (Transport endpoint is not connected) on MOUNTPOINT first.") var clearStale = false
    @Flag(name: .shortAndLong, help: "Accepted for compatibility: the daemon always runs in the foreground; see Mount/README.md to background it.") var foreground = false
    @Flag(help: "Log only warnings and errors.") var quiet = false
    @Flag(help: "Have the kernel send OPEN and RELEASE for every file and directory, as kernels before 4.19 do, instead of skipping them (slower; for tests and measurements).")
    var sendOpens = false
    @OptionGroup var api: APIOptions
    @OptionGroup(title: "Stores on S3") var s3: S3MountOptions
    @Option(name: .customShort("o"), help: ArgumentHelp("Comma-separated mount options, as mount(8) and fstab pass them.", valueName: "options"))
    var mountOptions: [String] = []

    mutating func run() throws {
        CLI.bootstrapLogging(verbose: !quiet)
        let logger = Logger(label: "snapfs.daemon")
        try applyMountOptions(logger)
        guard stageWindow >= 0 else { CLI.fail(.badInput("--stage-window must not be negative")); throw ExitCode(2) }
        if let r = retain, r < 1 { CLI.fail(.badInput("--retain must be at least 1")); throw ExitCode(2) }
        let listen = try api.validated()
        let storeURL = try CLI.run { () throws(StoreError) in try EngineRegistry.storeURL(store) }.standardizedFileURL
        try CLI.run { () throws(StoreError) in try Store.checkCatalogPresent(at: storeURL) }
        // One daemon per store (SPEC §8): checked before anything else changes. A store no one can write needs no
        // such lock (two readers cannot disturb each other), and could not hold one.
        let writable = access(storeURL.path, W_OK) == 0
        let lock = writable ? try CLI.run { () throws(StoreError) in try DaemonLock(store: storeURL) } : nil
        let mnt = URL(fileURLWithPath: mountpoint).standardizedFileURL.path
        try checkMountpoint(mnt, logger)
        let opened = try CLI.run { () throws(StoreError) in try EngineRegistry.open(storeURL) }
        let engine = try makeEngine(store: opened, stateOverride: state)
        // A store whose files are in S3 is read through a local cache; every other store from its directory.
        let s3Source: S3MountSource?
        do {
            s3Source = try S3MountWiring.objectSource(opened, s3, logger: logger)
        } catch let e as StoreError {
            CLI.fail(e)
            throw ExitCode(e.exitCode)
        } catch {
            CLI.fail(.badInput("\(error)"))
            throw ExitCode(2)
        }
        defer { s3Source?.shutdown() }
        let fs = SnapFileSystem(store: opened, engine: engine, options: FileOpsOptions(stageWindow: stageWindow),
                                objects: s3Source?.cache)
        if let flink = engine as? FlinkEngine {
            // Each snapshot's directory as Flink's relocatable savepoint layout: a copy of it restores from anywhere.
            fs.setPresenter(FlinkRelocatableView(engine: flink))
            // `.snapfs/jobs/<job>/status`: what `snapfs job status --json` prints, with the parallelism the JobManager
            // last gave (asked in the background): a kernel request never waits on Flink.
            let statuses = FlinkJobStatusCache(engine: flink)
            fs.setJobStatus { (job: String) throws(StoreError) -> [UInt8] in
                let enc = JSONEncoder()
                enc.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
                let status = try statuses.status(job)
                guard let data = try? enc.encode(status) else { throw .corrupt("cannot encode the status of job \(job)") }
                return Array(data) + [0x0a]
            }
            // `.snapfs/jobs/<job>/parallelism`, `restart`, `stop`, `upgrade`: the intents of `snapfs job`, run in the
            // request that asks for them (only that writer waits).
            if flink.settings.restURL != nil, !opened.isReadOnly {
                fs.setJobIntents(JobIntentHandlers(
                    parallelism: { (job: String) throws(StoreError) -> Int in
                        let st = try flink.jobStatus(job)
                        guard let p = st.parallelism else { throw .snapshotFailed("the parallelism of job \(st.job) is unknown: \(st.parallelismUnknown ?? "-")") }
                        return p
                    },
                    perform: { (job: String, intent: String, line: String) throws(StoreError) -> (snapshot: String?, message: String) in
                        let r = try IntentLine.perform(intent, job: job, line: line, with: try JobIntents(engine: flink))
                        return (r.snapshot, r.message)
                    }))
            }
        }
        let fuse = FUSEMount(fs: fs, mountpoint: mnt, allowOther: allowOther, skipOpens: !sendOpens)
        let scheduler = opened.isReadOnly ? nil : makeScheduler(store: opened, engine: engine, interval: checkpointInterval, retain: retain)
        if opened.isReadOnly {
            logger.notice("the store is read-only: snapshots can be read and copied; triggers, deletes and moves are refused (EROFS), and no checkpoints are taken",
                          metadata: ["store": .string(storeURL.path)])
        }
        let server = try api.start(listen, store: opened, engine: engine, logger: logger)
        defer { server?.stop() }
        scheduler?.start()
        logger.notice("serving", metadata: ["store": .string(storeURL.path), "mountpoint": .string(mnt),
                                            "checkpoints": .string(scheduler == nil ? "off" : "on")])
        defer { scheduler?.stop() }
        do {
            try withExtendedLifetime(lock) { try fuse.run() }
        } catch {
            CLI.fail(.io(path: mnt, errno: EIO, what: "\(error):"))
            throw ExitCode(8)
        }
    }

    /// Options from `-o`, as fstab and mount.fuse3 hand them over; generic mount(8) options are ignored.
    private mutating func applyMountOptions(_ logger: Logger) throws {
        let ignored: Set<String> = ["rw", "ro", "defaults", "auto", "noauto", "user", "users", "nouser", "_netdev", "nofail",
                                    "dev", "nodev", "suid", "nosuid", "exec", "noexec", "atime", "noatime", "relatime",
                                    "default_permissions", "foreground"]
        for opt in mountOptions.flatMap({ $0.split(separator: ",").map(String.init) }) {
            let kv = opt.split(separator: "=", maxSplits: 1).map(String.init)
            let key = kv[0], value = kv.count > 1 ? kv[1] : nil
            func need<T>(_ parse: (String) -> T?) throws -> T {
                guard let value, let v = parse(value) else { CLI.fail(.badInput("mount option '\(opt)' needs a valid value")); throw ExitCode(2) }
                return v
            }
            switch key {
            case "state": state = try need { $0 }
            case "checkpoint-interval", "checkpoint_interval": checkpointInterval = try need(Double.init)
            case "retain": retain = try need(Int.init)
            case "stage-window", "stage_window": stageWindow = try need(Double.init)
            case "allow_other": allowOther = true
            case "clear-stale", "clear_stale": clearStale = true
            default:
                if ignored.contains(key) || key.hasPrefix("x-") || key.hasPrefix("comment=") { continue }
                logger.warning("ignoring unknown mount option '\(opt)'")
            }
        }
    }

    /// Refuses a mountpoint that is already a mount or holds files, and one left stale by a killed daemon unless
    /// asked to clear it: mounting over either would hide something or fail with a less useful message.
    private func checkMountpoint(_ mnt: String, _ logger: Logger) throws {
        var st = stat()
        var probe = statvfs()
        // A dead FUSE daemon leaves its mount listed; statfs always reaches the daemon, so it tells dead from alive
        // where a cached stat of the mountpoint would not.
        let listed = Self.isMountPoint(mnt)
        let stale = (listed && statvfs(mnt, &probe) != 0 && errno == ENOTCONN) || (stat(mnt, &st) != 0 && errno == ENOTCONN)
        if stale {
            guard clearStale else {
                CLI.fail(.locked("\(mnt) is a stale mount (Transport endpoint is not connected), left by a daemon that stopped: run `fusermount3 -u -z \(mnt)` or pass --clear-stale"))
                throw ExitCode(5)
            }
            logger.notice("clearing stale mount", metadata: ["mountpoint": .string(mnt)])
            let p = Process()
            p.executableURL = URL(fileURLWithPath: "/bin/sh")
            p.arguments = ["-c", "fusermount3 -u -z \"$1\" || umount -l \"$1\"", "sh", mnt]
            try p.run()
            p.waitUntilExit()
        } else if listed {
            CLI.fail(.locked("\(mnt) is already mounted; unmount it first (fusermount3 -u \(mnt))"))
            throw ExitCode(5)
        }
        guard stat(mnt, &st) == 0 else {
            let e = errno
            CLI.fail(.io(path: mnt, errno: e, what: "cannot use mountpoint"))
            throw ExitCode(e == ENOENT ? 2 : 8)
        }
        guard st.st_mode & S_IFMT == S_IFDIR else { CLI.fail(.badInput("mountpoint \(mnt) is not a directory")); throw ExitCode(2) }
        if Self.isMountPoint(mnt) {
            CLI.fail(.locked("\(mnt) is still mounted; unmount it first (fusermount3 -u \(mnt))"))
            throw ExitCode(5)
        }
        if let names = try? FileManager.default.contentsOfDirectory(atPath: mnt), !names.isEmpty {
            CLI.fail(.badInput("mountpoint \(mnt) is not empty (\(names.count) entries): mounting would hide them"))
            throw ExitCode(2)
        }
    }

    static func isMountPoint(_ path: String) -> Bool {
        guard let text = try? String(contentsOfFile: "/proc/self/mountinfo", encoding: .utf8) else { return false }
        let real = URL(fileURLWithPath: path).resolvingSymlinksInPath().path
        for line in text.split(separator: "\n") {
            let f = line.split(separator: " ")
            guard f.count > 4 else { continue }
            // mountinfo escapes spaces and the like as octal.
            let mp = String(f[4]).replacingOccurrences(of: "\\040", with: " ")
            if mp == real || mp == path { return true }
        }
        return false
    }
}
