import ArgumentParser
import Foundation
import Logging
import VersSwarm

/// Options every subcommand shares.
struct GlobalOptions: ParsableArguments {
    @Option(help: "State directory (registry, local VM store). Default: $VERS_SWARM_HOME or $XDG_STATE_HOME/vers-swarm.")
    var home: String?

    @Option(help: "Backend: local or vers. Default: $VERS_SWARM_BACKEND, else vers when VERS_API_KEY is set, else local.")
    var backend: String?

    @Option(help: "Log level on stderr: debug, info, notice, warning, error. Default: $VERS_SWARM_LOG or info.")
    var logLevel: String?

    /// Sets up logging to stderr and opens the bridge.
    func bridge(session: String? = nil) throws -> Bridge {
        let env = ProcessInfo.processInfo.environment
        let level = logLevel ?? env["VERS_SWARM_LOG"] ?? "info"
        StderrLogHandler.setLevel(Logger.Level(rawValue: level) ?? .info)
        LoggingSystem.bootstrap { StderrLogHandler(label: $0) }
        let logger = Logger(label: "vers-swarm")
        do {
            return try Bridge(configuration: .fromEnvironment(home: home, backend: backend, session: session), logger: logger)
        } catch {
            throw CLIError("\(error)")
        }
    }
}

struct CLIError: Error, CustomStringConvertible {
    let description: String
    init(_ message: String) { description = message }
}

@main
struct VersSwarmCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "vers-swarm",
        abstract: "A tool server (MCP over stdio) for agent swarms on VMs.",
        version: VersSwarmVersion.current,
        subcommands: [Serve.self, Call.self, List.self, GC.self, Doctor.self, DemoCommand.self, Image.self, Unmount.self]
    )
}
