import MCP

/// `list_vms`: the registry's VMs with the backend's view of their state.
struct ListVMsTool: ToolHandler {
    let definition = Tool(
        name: "list_vms",
        title: "List VMs",
        description: "List the VMs this registry knows, with their state as the backend reports it (\"missing\" when the backend no longer has one).",
        inputSchema: Schema.object([
            "session": Schema.string("Only VMs of this session"),
            "swarm_id": Schema.string("Only VMs of this swarm"),
        ]),
        annotations: .init(title: "List VMs", readOnlyHint: true, destructiveHint: false, idempotentHint: true, openWorldHint: true),
        outputSchema: Schema.object([
            "vms": Schema.array(Schema.object([
                "vm_id": Schema.string("The VM"),
                "state": Schema.string("running, stopped, missing, …"),
                "provider": Schema.string("local or vers"),
                "parent_commit": Schema.string("The commit it was branched from"),
                "session": Schema.string("Its session"),
                "swarm_id": Schema.string("Its swarm"),
                "label": Schema.string("Its label"),
                "created_at": Schema.string("ISO 8601"),
            ], required: ["vm_id", "state", "provider", "created_at"]), "The VMs"),
        ], required: ["vms"])
    )

    func call(_ arguments: ToolArguments, context: ToolContext) async throws -> ToolOutcome {
        try arguments.allowOnly(["session", "swarm_id"])
        let session = try arguments.string("session")
        let swarm = try arguments.string("swarm_id")
        let rows = try context.registry.vms().filter {
            (session == nil || $0.session == session) && (swarm == nil || $0.swarmID == swarm)
        }
        let live = Dictionary((try await context.provider.list()).map { ($0.vmID, $0.state) }, uniquingKeysWith: { a, _ in a })
        return ToolOutcome(.object(["vms": .array(rows.map { row in
            .compact([
                "vm_id": .string(row.vmID),
                "state": .string(live[row.vmID] ?? "missing"),
                "provider": .string(row.provider),
                "parent_commit": row.parentCommit.map { .string($0) },
                "session": row.session.map { .string($0) },
                "swarm_id": row.swarmID.map { .string($0) },
                "label": row.label.map { .string($0) },
                "created_at": .string(row.createdAt.iso8601),
            ])
        })]))
    }
}
