import Foundation
import MCP

/// `swarm_map`: one call fans a task list out over branches of a commit.
struct SwarmMapTool: ToolHandler {
    let definition = Tool(
        name: "swarm_map",
        title: "Run tasks on a swarm of branched VMs",
        description: """
            Fan tasks out over copy-on-write branches of one commit (id, label, or a VM, committed first): each task \
            runs on a fresh branch, at most `concurrency` at once, branched as slots free up. `tasks` are commands \
            (or {command, env?, stdin?, session?}); or give `template` with {input} (and {index}) plus `inputs`, each \
            input shell-quoted into the template. `retries` reruns a failed task on a fresh branch; mode \
            first_success stops at the first exit 0 and cancels the rest; `keep` (none|failed|all) says which VMs \
            survive; `commit_results` commits each finished branch as "<swarm_id>/<index>". Results come in task \
            order; a progress notification follows each finished task when the call has a progressToken; \
            cancelling the call deletes the swarm's VMs.
            """,
        inputSchema: Schema.object([
            "from": Schema.string("A commit id, a commit label or a VM id", minLength: 1),
            "tasks": Schema.array(Schema.oneOf([
                Schema.string("A shell command", minLength: 1),
                Schema.object([
                    "command": Schema.oneOf([Schema.string("A shell command", minLength: 1),
                                             Schema.array(Schema.string("An argument"), "argv", minItems: 1)], "What to run"),
                    "env": Schema.stringMap("Extra environment variables"),
                    "stdin": Schema.string("Standard input"),
                    "session": Schema.string("Bind the task's VM to this session", minLength: 1),
                ], required: ["command"]),
            ], "A task"), "The tasks", minItems: 1),
            "template": Schema.string("A shell command with {input} (and {index}) placeholders", minLength: 1),
            "inputs": Schema.array(Schema.oneOf([["type": "string"], ["type": "number"]], "An input"), "One task per input", minItems: 1),
            "concurrency": Schema.integer("Tasks running at once", minimum: 1, maximum: SwarmPlan.maxConcurrency),
            "timeout_s": Schema.number("Seconds per task before its process tree is killed", minimum: 0.001, maximum: ExecTool.maxTimeout),
            "retries": Schema.integer("Reruns of a failed task on a fresh branch", minimum: 0, maximum: SwarmPlan.maxRetries),
            "mode": .object(["type": "string", "enum": ["all", "first_success"], "description": "all (default) or first_success"]),
            "keep": .object(["type": "string", "enum": ["none", "failed", "all"], "description": "Which VMs survive (default none)"]),
            "commit_results": Schema.boolean("Commit each finished branch, labelled <swarm_id>/<index>"),
            "max_output_bytes": Schema.integer("Bytes kept per stream per task (default 65536)", minimum: 1, maximum: ExecTool.maxOutputLimit),
        ], required: ["from"]),
        annotations: .init(title: "Run a swarm", readOnlyHint: false, destructiveHint: true, idempotentHint: false, openWorldHint: true),
        outputSchema: Schema.object([
            "swarm_id": Schema.string("The swarm"),
            "from_commit": Schema.string("The commit every branch came from"),
            "results": Schema.array(Schema.object([
                "index": Schema.integer("Task index", minimum: 0),
                "status": .object(["type": "string", "enum": ["ok", "failed", "timeout", "cancelled", "error"]]),
                "exit_code": Schema.nullable("integer", "Exit status, null when the command did not run"),
                "stdout": Schema.string("Standard output (bounded)"),
                "stderr": Schema.string("Standard error (bounded)"),
                "duration_ms": Schema.integer("Milliseconds", minimum: 0),
                "attempts": Schema.integer("Branches tried", minimum: 0),
                "vm_id": Schema.string("The task's VM, when kept"),
                "commit_id": Schema.string("The commit of its branch, with commit_results"),
                "error": Schema.string("Why the task could not run"),
            ], required: ["index", "status", "exit_code", "stdout", "stderr", "duration_ms"]), "One per task, in task order"),
            "summary": Schema.object([
                "total": Schema.integer("Tasks"), "ok": Schema.integer("Exit 0"), "failed": Schema.integer("Non-zero exit"),
                "timeout": Schema.integer("Killed by timeout_s"), "cancelled": Schema.integer("Stopped or never started"),
                "error": Schema.integer("Could not run"), "duration_ms": Schema.integer("Wall time of the call"),
                "kept": Schema.array(Schema.string("A VM id"), "VMs that survive the call"),
            ], required: ["total", "ok", "failed", "timeout", "cancelled", "error", "duration_ms", "kept"]),
        ], required: ["swarm_id", "from_commit", "results", "summary"])
    )

    func call(_ arguments: ToolArguments, context: ToolContext) async throws -> ToolOutcome {
        let plan = try SwarmPlan(arguments, defaultConcurrency: context.provider.defaultConcurrency)
        let started = ContinuousClock.now
        let (commitID, _) = try await context.resolveCommit(plan.from)
        let swarmID = "swarm-" + UUID().uuidString.prefix(8).lowercased()
        let owner = Owner.current
        var record = SwarmRecord(swarmID: swarmID, fromCommit: commitID, ownerPID: Int(owner.pid), ownerStart: Int(owner.start),
                                 state: "running", keep: plan.keep.rawValue, taskCount: plan.tasks.count, createdAt: Date())
        try context.registry.saveSwarm(record)
        let results = await SwarmRunner(context: context, plan: plan, swarmID: swarmID, commitID: commitID).run()
        let cancelled = Task.isCancelled
        record.state = cancelled ? "cancelled" : "done"
        record.finishedAt = Date()
        try? context.registry.saveSwarm(record)
        let count = { (status: String) in results.filter { $0.status == status }.count }
        let elapsed = ContinuousClock.now - started
        let summary: Value = .object([
            "total": .int(results.count), "ok": .int(count("ok")), "failed": .int(count("failed")),
            "timeout": .int(count("timeout")), "cancelled": .int(count("cancelled")), "error": .int(count("error")),
            "duration_ms": .int(elapsed.milliseconds),
            "kept": .array(results.compactMap { $0.vmID.map { .string($0) } }),
        ])
        let failed = plan.mode == .all ? results.contains { $0.status != "ok" } : !results.contains { $0.status == "ok" }
        return ToolOutcome(.object([
            "swarm_id": .string(swarmID),
            "from_commit": .string(commitID),
            "results": .array(results.map(Self.json)),
            "summary": summary,
        ]), isError: failed)
    }

    static func json(_ r: SwarmRunner.Result) -> Value {
        .compact([
            "index": .int(r.index), "status": .string(r.status), "exit_code": r.exitCode.map { .int($0) } ?? .null,
            "stdout": .string(r.stdout), "stderr": .string(r.stderr), "duration_ms": .int(r.durationMS),
            "attempts": .int(r.attempts), "vm_id": r.vmID.map { .string($0) }, "commit_id": r.commitID.map { .string($0) },
            "error": r.error.map { .string($0) },
        ])
    }
}
