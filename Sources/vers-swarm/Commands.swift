import ArgumentParser
import Foundation
import MCP
import VersSwarm

struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Serve MCP (JSON-RPC 2.0) on stdin/stdout; logs go to stderr.")
    @OptionGroup var options: GlobalOptions
    @Option(help: "Scope this bridge to one session's VM (a sub-agent's bridge). Default: $VERS_SWARM_SESSION.")
    var session: String?

    func run() async throws {
        let bridge = try options.bridge(session: session)
        if bridge.configuration.session == nil {
            // Tear down what dead bridges left, without delaying the first response.
            Task.detached {
                do {
                    let report = try await GarbageCollector(bridge: bridge).run()
                    if !report.deleted.isEmpty || !report.droppedRows.isEmpty {
                        bridge.logger.notice("gc at start", metadata: ["report": "\(JSONCoding.string(report.json))"])
                    }
                } catch {
                    bridge.logger.warning("gc at start failed", metadata: ["error": "\(error)"])
                }
            }
        }
        let status = await MCPServer(bridge: bridge).run()
        throw ExitCode(status)
    }
}

struct GC: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gc",
        abstract: "Tear down swarms whose bridge died (honouring keep), half-made VMs, and rows of VMs the backend no longer has.")
    @OptionGroup var options: GlobalOptions
    @Flag(help: "First rebuild registry rows from the backend's labels (Vers: GET /vms for this key), e.g. after losing the state dir.")
    var reconcile = false

    func run() async throws {
        let bridge = try options.bridge()
        do {
            print(JSONCoding.string(try await GarbageCollector(bridge: bridge).run(reconcile: reconcile).json))
        } catch {
            throw CLIError("gc failed: \(error)")
        }
    }
}

struct Call: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Call one tool and print its structured result; the exit status is 1 when the result is an error.")
    @OptionGroup var options: GlobalOptions
    @Argument(help: "The tool, e.g. create_vm, exec, delete.") var tool: String
    @Argument(help: "The arguments as a JSON object.") var arguments: String = "{}"

    func run() async throws {
        let value: Value
        do { value = try JSONCoding.parse(arguments) } catch {
            throw ValidationError("the arguments are not valid JSON: \(arguments)")
        }
        let bridge = try options.bridge()
        do {
            switch try await bridge.call(tool, arguments: value, path: "") {
            case .success(let outcome):
                print(JSONCoding.string(outcome.structured))
                if outcome.isError { throw ExitCode(1) }
            case .failure(let error):
                FileHandle.standardError.write(Data("error (\(error.kind.rawValue)): \(error.message)\n".utf8))
                throw ExitCode(1)
            }
        } catch let error as RPCError {
            FileHandle.standardError.write(Data("invalid arguments: \(error.message)\n".utf8))
            throw ExitCode(2)
        }
    }
}

struct List: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "ls", abstract: "List the VMs in the registry.")
    @OptionGroup var options: GlobalOptions

    func run() async throws {
        let bridge = try options.bridge()
        guard case .success(let outcome) = try await bridge.call("list_vms", arguments: nil, path: ""),
              let vms = outcome.structured.objectValue?["vms"]?.arrayValue else { throw ExitCode(1) }
        for vm in vms {
            let o = vm.objectValue ?? [:]
            let fields = ["vm_id", "state", "parent_commit", "session", "created_at"].map { o[$0]?.stringValue ?? "-" }
            print(fields.joined(separator: "  "))
        }
    }
}

struct Doctor: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Check the backend, privileges, overlayfs, cgroups, libraries and state dir.")
    @OptionGroup var options: GlobalOptions

    func run() async throws {
        let bridge = try options.bridge()
        let checks = await bridge.doctor()
        for check in checks {
            print("\(check.status.rawValue.padding(toLength: 5, withPad: " ", startingAt: 0)) \(check.name): \(check.detail)")
        }
        if checks.contains(where: { $0.status == .fail }) { throw ExitCode(1) }
    }
}

struct Unmount: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Unmount the local VM store once no local VM is left.")
    @OptionGroup var options: GlobalOptions

    func run() async throws {
        let bridge = try options.bridge()
        guard let local = bridge.provider as? LocalProvider else { return }
        do { try await local.unmount() } catch {
            throw CLIError("\(error)")
        }
    }
}

struct DemoCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "demo",
        abstract: "Run the demo swarm: golden VM, commit \"golden\", branch N, exec in each, delete all.")
    @OptionGroup var options: GlobalOptions
    @Option(help: "How many branches.") var workers: Int = 4

    func run() async throws {
        guard (1...64).contains(workers) else { throw ValidationError("--workers must be between 1 and 64") }
        let bridge = try options.bridge()
        do {
            let summary = try await Demo(bridge: bridge, workers: workers).run()
            print(JSONCoding.string(summary))
        } catch {
            throw CLIError("demo failed: \(error)")
        }
    }
}

struct Image: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Local images: root file systems VMs can start from (create_vm {\"image\": NAME}).",
        subcommands: [Import.self, ListImages.self])

    struct Import: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Import a root file system: a directory or a tarball.")
        @OptionGroup var options: GlobalOptions
        @Argument(help: "The image name (lower-case letters, digits, '.', '_', '-').") var name: String
        @Argument(help: "A directory or a tarball holding the root file system (with /bin/sh).") var source: String

        func run() async throws {
            let bridge = try options.bridge()
            guard let local = bridge.provider as? LocalProvider else { throw CLIError("images belong to the local backend") }
            do { try await local.importImage(name: name, from: source) } catch { throw CLIError("\(error)") }
            print(name)
        }
    }

    struct ListImages: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "ls", abstract: "List the images.")
        @OptionGroup var options: GlobalOptions

        func run() async throws {
            let bridge = try options.bridge()
            guard let local = bridge.provider as? LocalProvider else { throw CLIError("images belong to the local backend") }
            for name in ["default"] + local.images() { print(name) }
        }
    }
}
