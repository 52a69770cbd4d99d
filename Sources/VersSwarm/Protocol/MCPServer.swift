import Foundation
import Logging
import MCP

/// `vers-swarm serve`: MCP over stdio. Reads one JSON-RPC message per line,
/// runs requests concurrently, answers each id exactly once, and at end of
/// input answers what is in flight and returns.
public final class MCPServer: Sendable {
    /// Protocol versions we speak, newest first.
    public static let protocolVersions = ["2025-11-25", "2025-06-18", "2025-03-26"]
    static let logLevels: [String: Logger.Level] = [
        "debug": .debug, "info": .info, "notice": .notice, "warning": .warning,
        "error": .error, "critical": .critical, "alert": .critical, "emergency": .critical,
    ]

    private let bridge: Bridge
    private let writer: OutputWriter
    private let reader: LineReader
    private let inFlight = InFlight()

    public init(bridge: Bridge, input: Int32 = 0, output: Int32 = 1) {
        self.bridge = bridge
        reader = LineReader(fd: input)
        writer = OutputWriter(fd: output)
    }

    /// Serves until end of input; returns the exit status (0).
    public func run() async -> Int32 {
        // A client that closes its end early must not kill the server with SIGPIPE: writes just fail.
        signal(SIGPIPE, SIG_IGN)
        reader.start()
        for await item in reader.lines {
            switch item {
            case .tooLong(let size):
                send(id: .null, error: .invalidRequest("message of \(size) bytes exceeds the \(LineReader.maxLineBytes)-byte limit"))
            case .line(let data):
                await handle(data)
            }
        }
        await inFlight.drain()
        return 0
    }

    private func send(id: Value, result: Value) {
        writer.send(.object(["jsonrpc": "2.0", "id": id, "result": result]))
    }

    private func send(id: Value, error: RPCError) {
        writer.send(.object(["jsonrpc": "2.0", "id": id, "error": error.json]))
    }

    private func handle(_ line: Data) async {
        switch Incoming(line: line) {
        case .invalid(let id, let error):
            send(id: id, error: error)
        case .response:
            break
        case .notification(let method, let params):
            if method == "notifications/cancelled", let id = params?.objectValue?["requestId"] {
                await inFlight.cancel(JSONCoding.string(id))
            }
        case .request(let id, let method, let params):
            let started = await inFlight.start(JSONCoding.string(id)) { [self] in
                let response: Result<Value, RPCError>
                do throws(RPCError) {
                    response = .success(try await respond(method: method, params: params))
                } catch {
                    response = .failure(error)
                }
                if Task.isCancelled {
                    send(id: id, error: .cancelled)
                    return
                }
                switch response {
                case .success(let result): send(id: id, result: result)
                case .failure(let error): send(id: id, error: error)
                }
            }
            if !started {
                send(id: id, error: .invalidRequest("id \(JSONCoding.string(id)) is already in use by a request in flight"))
            }
        }
    }

    // MARK: - Methods

    private func respond(method: String, params: Value?) async throws(RPCError) -> Value {
        switch method {
        case "initialize":
            return try initialize(try ToolArguments(params, path: ""))
        case "ping":
            return .object([:])
        case "tools/list":
            return .object(["tools": .array(bridge.tools.map { JSONCoding.value($0.definition) })])
        case "tools/call":
            return try await callTool(try ToolArguments(params, path: ""))
        case "logging/setLevel":
            let args = try ToolArguments(params, path: "")
            let name = try args.requiredString("level")
            guard let level = Self.logLevels[name] else {
                throw RPCError.invalidParams("level", "unknown level \"\(name)\"; use one of \(Self.logLevels.keys.sorted().joined(separator: ", "))")
            }
            StderrLogHandler.setLevel(level)
            return .object([:])
        default:
            guard bridge.tool(method) != nil else { throw RPCError.methodNotFound(method) }
            // `_meta` is MCP's, not the tool's: a plain call may carry a progressToken there too.
            var arguments = params
            var progressMeta: Value?
            if case .object(var members)? = params, let meta = members.removeValue(forKey: "_meta") {
                arguments = .object(members)
                progressMeta = meta
            }
            switch try await bridge.call(method, arguments: arguments, path: "", progress: reporter(for: progressMeta)) {
            case .success(let outcome): return outcome.structured
            case .failure(let error): throw RPCError.toolFailed(method, error)
            }
        }
    }

    private func initialize(_ args: ToolArguments) throws(RPCError) -> Value {
        let requested = try args.requiredString("protocolVersion")
        let version = Self.protocolVersions.contains(requested) ? requested : Self.protocolVersions[0]
        return .object([
            "protocolVersion": .string(version),
            "capabilities": .object(["tools": .object(["listChanged": false]), "logging": .object([:])]),
            "serverInfo": .object(["name": "vers-swarm", "title": "vers-swarm", "version": .string(VersSwarmVersion.current)]),
            "instructions": .string(Self.instructions),
        ])
    }

    private func callTool(_ args: ToolArguments) async throws(RPCError) -> Value {
        let name = try args.requiredString("name")
        switch try await bridge.call(name, arguments: args.values["arguments"], path: "arguments", progress: reporter(for: args.values["_meta"])) {
        case .success(let outcome):
            return .object([
                "content": .array([.object(["type": "text", "text": .string(JSONCoding.string(outcome.structured))])]),
                "structuredContent": outcome.structured,
                "isError": .bool(outcome.isError),
            ])
        case .failure(let error):
            return .object([
                "content": .array([.object(["type": "text", "text": .string(error.message)])]),
                "isError": true,
            ])
        }
    }

    /// Sends notifications/progress for the progressToken in `meta`, if it has one.
    private func reporter(for meta: Value?) -> ProgressReporter? {
        guard let token = meta?["progressToken"], token.stringValue != nil || token.intValue != nil else { return nil }
        let writer = self.writer
        return { done, total, message in
            writer.send(.object(["jsonrpc": "2.0", "method": "notifications/progress", "params": .object([
                "progressToken": token, "progress": .int(done), "total": .int(total), "message": .string(message),
            ])]))
        }
    }

    static let instructions = """
        vers-swarm runs agent swarms on VMs. Workflow: create_vm, prepare it with exec, commit it with a label \
        (e.g. "golden"), branch N copy-on-write VMs from the label, run exec on each, then delete every VM \
        (delete {"all": true}). list_vms and commits show what exists.
        """
}

/// The version of this build.
public enum VersSwarmVersion {
    public static let current = "0.1.0"
}
