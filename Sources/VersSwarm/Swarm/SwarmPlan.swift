import MCP

/// A parsed swarm_map request: what each task runs and how the swarm behaves.
struct SwarmPlan: Sendable {
    /// How the swarm ends.
    enum Mode: String, Sendable { case all, firstSuccess = "first_success" }
    /// Which VMs survive the call.
    enum Keep: String, Sendable { case none, failed, all }

    /// One task: its command, input and optional session.
    struct Task: Sendable {
        var index: Int
        var request: ExecRequest
        var session: String?
    }

    static let maxTasks = 4096
    static let maxConcurrency = 256
    static let maxRetries = 10

    var from: String
    var tasks: [Task]
    var concurrency: Int
    var retries: Int
    var mode: Mode
    var keep: Keep
    var commitResults: Bool

    /// Parses and validates the arguments; every mistake names its field.
    init(_ arguments: ToolArguments, defaultConcurrency: Int) throws(RPCError) {
        try arguments.allowOnly(["from", "tasks", "template", "inputs", "concurrency", "timeout_s", "retries", "mode",
                                 "keep", "commit_results", "max_output_bytes"])
        from = try arguments.requiredString("from")
        let timeout = try arguments.number("timeout_s", in: 0.001...ExecTool.maxTimeout)
        let maxOutput = try arguments.int("max_output_bytes", in: 1...ExecTool.maxOutputLimit) ?? (64 << 10)
        var tasks: [Task] = []
        switch (arguments.values["tasks"], arguments.values["template"]) {
        case (.some(.array), nil) where arguments.values["inputs"] != nil:
            throw arguments.fail("inputs", "goes with template, not with tasks")
        case (.some(.array(let items)), nil):
            guard !items.isEmpty else { throw arguments.fail("tasks", "must list at least one task") }
            guard items.count <= Self.maxTasks else { throw arguments.fail("tasks", "at most \(Self.maxTasks) tasks") }
            for (i, item) in items.enumerated() {
                let path = "\(arguments.path(of: "tasks"))[\(i)]"
                let object: Value = item.stringValue != nil ? .object(["command": item]) : item
                guard object.objectValue != nil else {
                    throw RPCError.invalidParams(path, "expected a command string or {command, env?, stdin?, session?}")
                }
                let taskArgs = try ToolArguments(object, path: path)
                try taskArgs.allowOnly(["command", "env", "stdin", "session"])
                var request = try ExecTool.request(from: taskArgs)
                request.timeout = timeout
                request.maxOutputBytes = maxOutput
                tasks.append(Task(index: i, request: request, session: try taskArgs.string("session")))
            }
        case (nil, .some(.string(let template))):
            guard template.contains("{input}") else { throw arguments.fail("template", "must contain {input}") }
            guard case .array(let inputs)? = arguments.values["inputs"], !inputs.isEmpty else {
                throw arguments.fail("inputs", "required with template: a non-empty array of strings or numbers")
            }
            guard inputs.count <= Self.maxTasks else { throw arguments.fail("inputs", "at most \(Self.maxTasks) inputs") }
            for (i, input) in inputs.enumerated() {
                let text: String
                switch input {
                case .string(let s): text = s
                case .int(let n): text = String(n)
                case .double(let d): text = String(d)
                case .bool(let b): text = String(b)
                default: throw RPCError.invalidParams("\(arguments.path(of: "inputs"))[\(i)]", "expected a string or number, got \(input.jsonTypeName)")
                }
                if text.contains("\0") { throw RPCError.invalidParams("\(arguments.path(of: "inputs"))[\(i)]", "must not contain NUL") }
                let command = template.replacingOccurrences(of: "{input}", with: Self.shellQuote(text))
                    .replacingOccurrences(of: "{index}", with: String(i))
                tasks.append(Task(index: i, request: ExecRequest(argv: ExecRequest.shellArgv(command), timeout: timeout, maxOutputBytes: maxOutput), session: nil))
            }
        case (.some, .some):
            throw arguments.fail("template", "give tasks or template + inputs, not both")
        case (nil, nil):
            throw arguments.fail("tasks", "required: a task list, or template + inputs")
        case (.some(let other), nil):
            throw arguments.fail("tasks", "expected an array, got \(other.jsonTypeName)")
        case (nil, .some(let other)):
            throw arguments.fail("template", "expected a string, got \(other.jsonTypeName)")
        }
        let sessions = tasks.compactMap(\.session)
        if Set(sessions).count != sessions.count { throw arguments.fail("tasks", "session names must be distinct") }
        self.tasks = tasks
        concurrency = try arguments.int("concurrency", in: 1...Self.maxConcurrency) ?? min(defaultConcurrency, tasks.count)
        retries = try arguments.int("retries", in: 0...Self.maxRetries) ?? 0
        let mode = try arguments.string("mode") ?? "all"
        guard let parsedMode = Mode(rawValue: mode) else { throw arguments.fail("mode", "must be all or first_success") }
        self.mode = parsedMode
        let keep = try arguments.string("keep") ?? "none"
        guard let parsedKeep = Keep(rawValue: keep) else { throw arguments.fail("keep", "must be none, failed or all") }
        self.keep = parsedKeep
        commitResults = try arguments.bool("commit_results") ?? false
    }

    /// `s` as one single-quoted shell word: nothing in it is interpreted.
    static func shellQuote(_ s: String) -> String {
        "'" + s.replacingOccurrences(of: "'", with: "'\\''") + "'"
    }
}
