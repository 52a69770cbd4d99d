import MCP

/// `ssh_credentials`: a ready `ssh` command for a VM; the key stays in a 0600 file.
struct SSHCredentialsTool: ToolHandler {
    let definition = Tool(
        name: "ssh_credentials",
        title: "SSH login for a VM",
        description: "Write the VM's SSH key to a 0600 file in the state dir and return a ready `ssh` command line (SSH runs inside TLS on Vers, through an openssl s_client ProxyCommand). The key text itself is never returned. Local VMs have no SSH.",
        inputSchema: Schema.object([
            "vm_id": Schema.string("The VM", minLength: 1),
            "session": Schema.string("Or: the session whose VM to log in to", minLength: 1),
        ]),
        annotations: .init(title: "SSH login", readOnlyHint: true, destructiveHint: false, idempotentHint: true, openWorldHint: true),
        outputSchema: Schema.object([
            "vm_id": Schema.string("The VM"),
            "host": Schema.string("The SSH host name (also the TLS SNI name)"),
            "user": Schema.string("The login user"),
            "key_file": Schema.string("Path of the private key file (mode 0600)"),
            "ssh_command": Schema.string("A command line that logs in"),
        ], required: ["vm_id", "host", "user", "key_file", "ssh_command"])
    )

    func call(_ arguments: ToolArguments, context: ToolContext) async throws -> ToolOutcome {
        try arguments.allowOnly(["vm_id", "session"])
        let vmID = try await context.targetVM(arguments)
        let credentials = try await context.provider.sshCredentials(vmID: vmID)
        return ToolOutcome(.object([
            "vm_id": .string(vmID), "host": .string(credentials.host), "user": .string(credentials.user),
            "key_file": .string(credentials.keyFile), "ssh_command": .string(credentials.command),
        ]))
    }
}
