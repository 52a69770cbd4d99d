import MCP

/// `unbind_session`: releases a session's VM (the VM keeps running).
struct UnbindSessionTool: ToolHandler {
    let definition = Tool(
        name: "unbind_session",
        title: "Unbind a session",
        description: "Remove a session's binding. The VM keeps running; delete it separately.",
        inputSchema: Schema.object([
            "session": Schema.string("The session name", minLength: 1),
        ], required: ["session"]),
        annotations: .init(title: "Unbind a session", readOnlyHint: false, destructiveHint: false, idempotentHint: false, openWorldHint: false),
        outputSchema: Schema.object([
            "session": Schema.string("The session"),
            "vm_id": Schema.string("The VM it was bound to"),
        ], required: ["session", "vm_id"])
    )

    func call(_ arguments: ToolArguments, context: ToolContext) async throws -> ToolOutcome {
        try arguments.allowOnly(["session"])
        let session = try arguments.requiredString("session")
        guard let vmID = try context.registry.unbindSession(session) else {
            throw ToolError(.notFound, "session \"\(session)\" is not bound: sessions lists bindings")
        }
        return ToolOutcome(.object(["session": .string(session), "vm_id": .string(vmID)]))
    }
}
