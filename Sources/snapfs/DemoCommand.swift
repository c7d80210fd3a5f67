import ArgumentParser
import Foundation
import LocalEngine
import SnapStore

struct DemoCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "demo",
        abstract: "Mount the embedded default with a live demo workload and say what to try.")

    @Option(help: "Where the demo keeps its state, store and mountpoint.") var dir = "snapfs-demo"
    @Option(help: "Seconds between system checkpoints.") var checkpointInterval: Double = 5
    @Option(help: "System checkpoints to keep.") var retain = 5
    @Option(help: "Seconds between workload steps (a new segment; a merge every eighth).") var period: Double = 0.5

    func run() throws {
        CLI.bootstrapLogging(verbose: false)
        let root = URL(fileURLWithPath: dir).standardizedFileURL
        let state = root.appendingPathComponent("state"), storeDir = root.appendingPathComponent("store"), mnt = root.appendingPathComponent("mnt")
        for d in [state, mnt] { try FileManager.default.createDirectory(at: d, withIntermediateDirectories: true) }
        if !FileManager.default.fileExists(atPath: storeDir.appendingPathComponent("catalog.sqlite").path) {
            _ = try CLI.run { () throws(StoreError) in
                try Store.create(at: storeDir, engine: "local", settings: [
                    "state_dir": state.path, "default_format": "native-incremental", "job_state": "running",
                    "checkpoint_interval": String(checkpointInterval), "retain": String(retain),
                ])
            }
        }
        let workload = DemoWorkload(directory: state)
        try workload.prepare()
        workload.start(period: period)
        defer { workload.stop() }
        let m = mnt.path
        let me = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? "snapfs"
        // Written straight to the descriptor: print() holds it in a buffer until exit when stdout is a pipe or a
        // file (`Scripts/demo | tee demo.log`), so what to try would show only after the demo stopped.
        FileHandle.standardOutput.write(Data("""
        SnapFS demo: a key-value store's state in \(state.path) changes every \(period) s;
        a checkpoint is taken every \(Int(checkpointInterval)) s and the newest \(retain) are kept.
        The store is mounted at \(m). In another terminal, try:

          ls -l \(m)                                  # checkpoints, and latest -> the recovery point
          cat \(m)/.snapfs/status
          du -sh \(m); du -sh \(storeDir.path)          # shared files counted once
          echo before-upgrade > \(m)/.snapfs/trigger/canonical   # returns when the snapshot is listed
          touch \(m)/.snapfs/trigger/native-full
          mkdir \(m)/my-snapshot                      # a snapshot in the default format
          cat \(m)/.snapfs/snapshots/before-upgrade.json
          tar -C \(m)/before-upgrade -cf /tmp/before-upgrade.tar .
          mv \(m)/my-snapshot \(m)/renamed
          rm -rf \(m)/renamed                         # a checked delete
          rm -rf \(m)/latest/                         # refused: the recovery point (EBUSY)
          tail \(m)/.snapfs/events
          \(me) list \(storeDir.path)
          \(me) verify \(storeDir.path)

        Press Ctrl-C here to unmount and stop.


        """.utf8))
        var mount = try MountCommand.parse([storeDir.path, m, "--checkpoint-interval", String(checkpointInterval),
                                            "--retain", String(retain), "--clear-stale"])
        try mount.run()
    }
}
