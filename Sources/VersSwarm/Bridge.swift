import Foundation
import Logging
import MCP

/// Where the bridge keeps its state and which backend it drives.
public struct BridgeConfiguration: Sendable {
    /// The state directory (registry, local store, keys).
    public var home: String
    /// "local" or "vers".
    public var backend: String
    /// The session a scoped bridge is confined to (`serve --session`, `VERS_SWARM_SESSION`).
    public var session: String?

    public init(home: String, backend: String, session: String? = nil) {
        self.home = home
        self.backend = backend
        self.session = session
    }

    /// Reads `VERS_SWARM_HOME`, `VERS_SWARM_BACKEND` and `VERS_API_KEY`;
    /// explicit values win.
    public static func fromEnvironment(home: String? = nil, backend: String? = nil, session: String? = nil) -> BridgeConfiguration {
        let env = ProcessInfo.processInfo.environment
        let resolvedHome = home ?? env["VERS_SWARM_HOME"].flatMap { $0.isEmpty ? nil : $0 } ?? {
            if let state = env["XDG_STATE_HOME"], !state.isEmpty { return state + "/vers-swarm" }
            return (env["HOME"] ?? NSHomeDirectory()) + "/.local/state/vers-swarm"
        }()
        let hasKey = !(env["VERS_API_KEY"] ?? "").isEmpty
        let resolvedBackend = backend ?? env["VERS_SWARM_BACKEND"].flatMap { $0.isEmpty ? nil : $0 } ?? (hasKey ? "vers" : "local")
        let resolvedSession = session ?? env["VERS_SWARM_SESSION"].flatMap { $0.isEmpty ? nil : $0 }
        return BridgeConfiguration(home: (resolvedHome as NSString).standardizingPath, backend: resolvedBackend, session: resolvedSession)
    }
}

/// The tool server's core: registry, backend and tools, shared by `serve`,
/// `call`, `demo` and `ls`.
public final class Bridge: Sendable {
    public let configuration: BridgeConfiguration
    public let registry: Registry
    public let provider: any VMProvider
    public let logger: Logger
    /// Tools in the order tools/list shows them.
    public let tools: [any ToolHandler]
    private let byName: [String: any ToolHandler]

    /// Opens the registry and the backend named by the configuration.
    public init(configuration: BridgeConfiguration, logger: Logger) throws {
        self.configuration = configuration
        self.logger = logger
        try HostFS.mkdirs(configuration.home, mode: 0o700)
        registry = try Registry(path: configuration.home + "/registry.sqlite")
        switch configuration.backend {
        case "local":
            provider = LocalProvider(home: configuration.home, logger: logger)
        case "vers":
            do {
                provider = try VersProvider(home: configuration.home, registryID: try Self.registryID(home: configuration.home), logger: logger)
            } catch let error as ProviderError {
                throw ToolError(error.kind, error.message)
            }
        default:
            throw ToolError(.unavailable, "unknown backend \"\(configuration.backend)\": use local or vers")
        }
        let all: [any ToolHandler] = [
            CreateVMTool(), CommitTool(), BranchTool(), ExecTool(), SwarmMapTool(), DeleteTool(), ListVMsTool(),
            CommitsTool(), SessionsTool(), BindSessionTool(), UnbindSessionTool(), ReadFileTool(), WriteFileTool(),
            SSHCredentialsTool(),
        ]
        // A scoped bridge offers only what acts on its own session's VM.
        let scoped: Set<String> = ["exec", "read_file", "write_file", "commit", "ssh_credentials"]
        tools = configuration.session == nil ? all : all.filter { scoped.contains($0.definition.name) }
        byName = Dictionary(uniqueKeysWithValues: tools.map { ($0.definition.name, $0) })
    }

    /// A stable id for this state dir's registry, labelled on every cloud VM.
    static func registryID(home: String) throws -> String {
        let path = home + "/registry-id"
        if let id = HostFS.read(path)?.trimmingCharacters(in: .whitespacesAndNewlines), !id.isEmpty { return id }
        let id = UUID().uuidString.lowercased()
        try HostFS.writeAtomically(path, Data(id.utf8))
        return HostFS.read(path)?.trimmingCharacters(in: .whitespacesAndNewlines) ?? id
    }

    /// The context tools run with.
    public func context(progress: ProgressReporter? = nil) -> ToolContext {
        ToolContext(registry: registry, provider: provider, logger: logger, scope: configuration.session, progress: progress)
    }

    /// The tool with this name.
    public func tool(_ name: String) -> (any ToolHandler)? { byName[name] }

    /// Runs a tool for an in-process caller (demo, benchmarks): its
    /// structured result, or a thrown error when it failed in any way.
    public func run(_ tool: String, _ arguments: Value) async throws -> Value {
        switch try await call(tool, arguments: arguments, path: "") {
        case .success(let outcome) where !outcome.isError: return outcome.structured
        case .success(let outcome): throw ToolError(.backend, "\(tool) failed: \(JSONCoding.string(outcome.structured))")
        case .failure(let error): throw error
        }
    }

    /// Runs a tool. Argument mistakes throw `RPCError`; every other failure
    /// comes back as a `ToolError`.
    public func call(_ name: String, arguments: Value?, path: String, progress: ProgressReporter? = nil) async throws(RPCError) -> Result<ToolOutcome, ToolError> {
        guard let tool = byName[name] else {
            let scopedNote = configuration.session.map { " (this bridge is scoped to session \"\($0)\")" } ?? ""
            throw RPCError.invalidParams(path.isEmpty ? "method" : "name", "unknown tool \"\(name)\"\(scopedNote); tools/list shows the tools")
        }
        let args = try ToolArguments(arguments, path: path)
        do {
            return .success(try await tool.call(args, context: context(progress: progress)))
        } catch let error as RPCError {
            throw error
        } catch let error as ToolError {
            return .failure(error)
        } catch let error as ProviderError {
            return .failure(ToolError(error.kind, error.message))
        } catch let error as RegistryError {
            return .failure(ToolError(error.kind, error.message))
        } catch is CancellationError {
            return .failure(ToolError(.cancelled, "the call was cancelled"))
        } catch {
            logger.error("tool failed", metadata: ["tool": "\(name)", "error": "\(error)"])
            return .failure(ToolError(.backend, "\(name) failed: \(error)"))
        }
    }
}
