import MCP

/// `bind_session`: gives a session (a sub-agent) a VM.
struct BindSessionTool: ToolHandler {
    let definition = Tool(
        name: "bind_session",
        title: "Bind a session to a VM",
        description: "Bind a session name to a VM, so the sub-agent's scoped bridge (`serve --session NAME`) acts on it. A session holds one VM and a VM one session; rebinding needs unbind_session first.",
        inputSchema: Schema.object([
            "session": Schema.string("The session name", minLength: 1),
            "vm_id": Schema.string("The VM", minLength: 1),
        ], required: ["session", "vm_id"]),
        annotations: .init(title: "Bind a session", readOnlyHint: false, destructiveHint: false, idempotentHint: true, openWorldHint: false),
        outputSchema: Schema.object([
            "session": Schema.string("The session"),
            "vm_id": Schema.string("Its VM"),
        ], required: ["session", "vm_id"])
    )

    func call(_ arguments: ToolArguments, context: ToolContext) async throws -> ToolOutcome {
        try arguments.allowOnly(["session", "vm_id"])
        let session = try arguments.requiredString("session")
        let vmID = try arguments.requiredString("vm_id")
        let record = try context.registry.bindSession(session, to: vmID)
        await context.provider.tag(vmID: vmID, session: session, swarm: try context.registry.vm(vmID)?.swarmID)
        return ToolOutcome(.object(["session": .string(record.name), "vm_id": .string(record.vmID)]))
    }
}
