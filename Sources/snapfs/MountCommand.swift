import ArgumentParser

struct MountCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "mount", abstract: "Mount a store (being written).")
    func run() throws { throw ValidationError("mount is not built yet") }
}
