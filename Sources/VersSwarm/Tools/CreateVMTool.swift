import MCP

/// `create_vm`: a new VM that accepts exec when the call returns.
struct CreateVMTool: ToolHandler {
    let definition = Tool(
        name: "create_vm",
        title: "Create a VM",
        description: "Create a new VM and wait until it accepts exec. Prepare it (install what every worker needs), then commit it as the golden image.",
        inputSchema: Schema.object([
            "vcpu_count": Schema.integer("Virtual CPUs", minimum: 1, maximum: 64),
            "mem_size_mib": Schema.integer("Memory in MiB", minimum: 64, maximum: 1 << 20),
            "fs_size_mib": Schema.integer("Root file system size in MiB", minimum: 64, maximum: 1 << 24),
            "image": Schema.string("Base image (\"default\")", minLength: 1),
            "label": Schema.string("A free-form label remembered with the VM", minLength: 1),
            "session": Schema.string("Session name to bind the VM to", minLength: 1),
        ]),
        annotations: .init(title: "Create a VM", readOnlyHint: false, destructiveHint: false, idempotentHint: false, openWorldHint: true),
        outputSchema: Schema.object([
            "vm_id": Schema.string("The new VM's id"),
            "state": Schema.string("running"),
            "isolation": Schema.string("How the backend isolates VMs"),
            "label": Schema.string("The label given"),
            "session": Schema.string("The session given"),
            "warnings": Schema.array(Schema.string("A limit or feature not honoured"), "What the backend could not honour"),
        ], required: ["vm_id", "state", "isolation"])
    )

    func call(_ arguments: ToolArguments, context: ToolContext) async throws -> ToolOutcome {
        try arguments.allowOnly(["vcpu_count", "mem_size_mib", "fs_size_mib", "image", "label", "session"])
        let label = try arguments.string("label")
        let session = try arguments.string("session")
        let spec = VMSpec(
            vcpuCount: try arguments.int("vcpu_count", in: 1...64),
            memSizeMiB: try arguments.int("mem_size_mib", in: 64...(1 << 20)),
            fsSizeMiB: try arguments.int("fs_size_mib", in: 64...(1 << 24)),
            image: try arguments.string("image"),
            labels: session.map { [VMLabel.session: $0] } ?? [:]
        )
        if let session, let bound = try context.registry.session(session) {
            throw ToolError(.conflict, "session \"\(session)\" is already bound to VM \(bound.vmID): unbind_session it first")
        }
        let created = try await context.provider.create(spec)
        try context.recordVMs([created.vmID], parentCommit: nil, label: label)
        if let session { _ = try context.registry.bindSession(session, to: created.vmID) }
        return ToolOutcome(.compact([
            "vm_id": .string(created.vmID),
            "state": "running",
            "isolation": .string(context.provider.isolation),
            "label": label.map { .string($0) },
            "session": session.map { .string($0) },
            "warnings": created.warnings.isEmpty ? nil : .array(created.warnings.map { .string($0) }),
        ]))
    }
}
