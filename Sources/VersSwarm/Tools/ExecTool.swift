import MCP

/// `exec`: runs one command on a VM with bounded output.
struct ExecTool: ToolHandler {
    static let maxOutputLimit = 16 << 20
    static let maxTimeout = 86_400.0

    let definition = Tool(
        name: "exec",
        title: "Run a command on a VM",
        description: "Run a command on a VM: a string runs with `sh -c`, an array runs as argv. Output is captured bounded (head and tail kept, middle elided, `truncated` set). A timeout kills the command's whole process tree. Background processes (`cmd &`) keep running between execs. isError is true on a non-zero exit or a timeout.",
        inputSchema: Schema.object([
            "vm_id": Schema.string("The VM", minLength: 1),
            "session": Schema.string("Or: the session whose VM to use", minLength: 1),
            "command": Schema.oneOf([
                Schema.string("A shell command, run with sh -c", minLength: 1),
                Schema.array(Schema.string("An argument"), "argv: the program and its arguments", minItems: 1),
            ], "What to run"),
            "env": Schema.stringMap("Extra environment variables"),
            "cwd": Schema.string("Working directory inside the VM (default /root)", minLength: 1),
            "stdin": Schema.string("Text fed to the command's standard input"),
            "timeout_s": Schema.number("Seconds before the command's process tree is killed", minimum: 0.001, maximum: ExecTool.maxTimeout),
            "max_output_bytes": Schema.integer("Bytes kept per stream (default 262144)", minimum: 1, maximum: ExecTool.maxOutputLimit),
        ], required: ["command"]),
        annotations: .init(title: "Run a command on a VM", readOnlyHint: false, destructiveHint: true, idempotentHint: false, openWorldHint: true),
        outputSchema: Self.resultSchema
    )

    /// The schema of an exec result (shared with swarm results).
    static let resultSchema = Schema.object([
        "exit_code": Schema.integer("Exit status; 128+N when killed by signal N; 124 on timeout"),
        "stdout": Schema.string("Standard output (bounded)"),
        "stderr": Schema.string("Standard error (bounded)"),
        "duration_ms": Schema.integer("Wall time in milliseconds", minimum: 0),
        "timed_out": Schema.boolean("True when timeout_s killed the command"),
        "truncated": Schema.boolean("True when output was elided"),
    ], required: ["exit_code", "stdout", "stderr", "duration_ms", "timed_out", "truncated"])

    func call(_ arguments: ToolArguments, context: ToolContext) async throws -> ToolOutcome {
        try arguments.allowOnly(["vm_id", "session", "command", "env", "cwd", "stdin", "timeout_s", "max_output_bytes"])
        let request = try Self.request(from: arguments)
        let vmID = try await context.targetVM(arguments)
        let result = try await context.provider.exec(vmID: vmID, request)
        return ToolOutcome(Self.json(result), isError: result.exitCode != 0 || result.timedOut)
    }

    /// Parses the command fields shared by exec and swarm tasks.
    static func request(from arguments: ToolArguments) throws(RPCError) -> ExecRequest {
        let argv: [String]
        switch arguments.values["command"] {
        case nil, .null?:
            throw arguments.fail("command", "required: a shell command string or an argv array")
        case .string(let command)?:
            guard !command.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty else {
                throw arguments.fail("command", "must not be empty")
            }
            argv = ExecRequest.shellArgv(command)
        case .array?:
            let items = try arguments.strings("command") ?? []
            guard let first = items.first, !first.isEmpty else {
                throw arguments.fail("command", "argv must start with a non-empty program name")
            }
            argv = items
        case let other?:
            throw arguments.fail("command", "expected a string or an array of strings, got \(other.jsonTypeName)")
        }
        if argv.contains(where: { $0.contains("\0") }) { throw arguments.fail("command", "must not contain NUL bytes") }
        let env = try arguments.stringMap("env") ?? [:]
        for (key, value) in env {
            let name = key.unicodeScalars
            guard let first = name.first, first == "_" || (first.isASCII && first.properties.isAlphabetic),
                  name.allSatisfy({ $0 == "_" || ($0.isASCII && $0.properties.isAlphabetic) || ("0"..."9").contains($0) }),
                  !value.contains("\0") else {
                throw RPCError.invalidParams("\(arguments.path(of: "env")).\(key)", "environment names are letters, digits and _, not starting with a digit; values have no NUL")
            }
        }
        let cwd = try arguments.string("cwd")
        if let cwd, !cwd.hasPrefix("/") { throw arguments.fail("cwd", "must be an absolute path") }
        return ExecRequest(
            argv: argv, env: env, cwd: cwd, stdin: try arguments.string("stdin").map { Array($0.utf8) },
            timeout: try arguments.number("timeout_s", in: 0.001...maxTimeout),
            maxOutputBytes: try arguments.int("max_output_bytes", in: 1...maxOutputLimit) ?? ExecRequest.defaultMaxOutputBytes
        )
    }

    static func json(_ result: ExecResult) -> Value {
        .object([
            "exit_code": .int(result.exitCode),
            "stdout": .string(result.stdout),
            "stderr": .string(result.stderr),
            "duration_ms": .int(result.durationMS),
            "timed_out": .bool(result.timedOut),
            "truncated": .bool(result.truncated),
        ])
    }
}
