import MCP

/// `sessions`: every session and the VM it is bound to.
struct SessionsTool: ToolHandler {
    let definition = Tool(
        name: "sessions",
        title: "List sessions",
        description: "List sessions (sub-agent names) and the VM each is bound to. A sub-agent's bridge started with `serve --session NAME` acts on that VM only.",
        inputSchema: Schema.object([:]),
        annotations: .init(title: "List sessions", readOnlyHint: true, destructiveHint: false, idempotentHint: true, openWorldHint: false),
        outputSchema: Schema.object([
            "sessions": Schema.array(Schema.object([
                "session": Schema.string("The session name"),
                "vm_id": Schema.string("Its VM"),
                "created_at": Schema.string("ISO 8601"),
            ], required: ["session", "vm_id", "created_at"]), "The bindings"),
        ], required: ["sessions"])
    )

    func call(_ arguments: ToolArguments, context: ToolContext) async throws -> ToolOutcome {
        try arguments.allowOnly([])
        return ToolOutcome(.object(["sessions": .array(try context.registry.sessions().map {
            .object(["session": .string($0.name), "vm_id": .string($0.vmID), "created_at": .string($0.createdAt.iso8601)])
        })]))
    }
}
