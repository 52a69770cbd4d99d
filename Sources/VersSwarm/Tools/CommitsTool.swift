import MCP

/// `commits`: every recorded commit with its label and lineage.
struct CommitsTool: ToolHandler {
    let definition = Tool(
        name: "commits",
        title: "List commits",
        description: "List commits with their labels, descriptions and lineage (the VM committed and the commit it came from).",
        inputSchema: Schema.object([:]),
        annotations: .init(title: "List commits", readOnlyHint: true, destructiveHint: false, idempotentHint: true, openWorldHint: false),
        outputSchema: Schema.object([
            "commits": Schema.array(Schema.object([
                "commit_id": Schema.string("The commit"),
                "label": Schema.string("Its unique label"),
                "description": Schema.string("Its description"),
                "vm_id": Schema.string("The VM committed"),
                "parent_commit": Schema.string("The commit that VM came from"),
                "created_at": Schema.string("ISO 8601"),
            ], required: ["commit_id", "created_at"]), "The commits, oldest first"),
        ], required: ["commits"])
    )

    func call(_ arguments: ToolArguments, context: ToolContext) async throws -> ToolOutcome {
        try arguments.allowOnly([])
        return ToolOutcome(.object(["commits": .array(try context.registry.commits().map { c in
            .compact([
                "commit_id": .string(c.commitID),
                "label": c.label.map { .string($0) },
                "description": c.description.map { .string($0) },
                "vm_id": c.vmID.map { .string($0) },
                "parent_commit": c.parentCommit.map { .string($0) },
                "created_at": .string(c.createdAt.iso8601),
            ])
        })]))
    }
}
