import MCP

/// `commit`: freezes a VM's files into an immutable commit, optionally labelled.
struct CommitTool: ToolHandler {
    let definition = Tool(
        name: "commit",
        title: "Commit a VM",
        description: "Snapshot a VM's file system into an immutable commit that branch can copy. Give it a unique label (e.g. \"golden\") to refer to it by name. Running processes are frozen during the snapshot; their memory is not kept.",
        inputSchema: Schema.object([
            "vm_id": Schema.string("The VM to commit", minLength: 1),
            "session": Schema.string("Or: the session whose VM to commit", minLength: 1),
            "label": Schema.string("A unique name for the commit", minLength: 1),
            "description": Schema.string("Free text remembered with the commit"),
        ]),
        annotations: .init(title: "Commit a VM", readOnlyHint: false, destructiveHint: false, idempotentHint: false, openWorldHint: true),
        outputSchema: Schema.object([
            "commit_id": Schema.string("The new commit's id"),
            "vm_id": Schema.string("The VM committed"),
            "label": Schema.string("Its label"),
            "description": Schema.string("Its description"),
            "parent_commit": Schema.string("The commit the VM was branched from"),
        ], required: ["commit_id", "vm_id"])
    )

    func call(_ arguments: ToolArguments, context: ToolContext) async throws -> ToolOutcome {
        try arguments.allowOnly(["vm_id", "session", "label", "description"])
        let vmID = try await context.targetVM(arguments)
        let label = try arguments.string("label")
        if label?.isEmpty == true { throw RPCError.invalidParams(arguments.path(of: "label"), "must not be empty") }
        let record = try await context.commitVM(vmID, label: label, description: try arguments.string("description"))
        return ToolOutcome(.compact([
            "commit_id": .string(record.commitID),
            "vm_id": .string(vmID),
            "label": record.label.map { .string($0) },
            "description": record.description.map { .string($0) },
            "parent_commit": record.parentCommit.map { .string($0) },
        ]))
    }
}
