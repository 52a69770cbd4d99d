import Foundation
import MCP

/// The demo swarm: golden VM → commit "golden" → branch N → exec in each →
/// delete everything. Progress goes to stderr; the summary is returned.
public struct Demo: Sendable {
    let bridge: Bridge
    let workers: Int

    public init(bridge: Bridge, workers: Int = 4) {
        self.bridge = bridge
        self.workers = workers
    }

    private func say(_ line: String) {
        FileHandle.standardError.write(Data("demo: \(line)\n".utf8))
    }

    private func call(_ tool: String, _ arguments: Value) async throws -> Value {
        try await bridge.run(tool, arguments)
    }

    /// Runs the workflow; every VM it made is deleted even when a step fails.
    public func run() async throws -> Value {
        var made: [String] = []
        do {
            let result = try await steps(&made)
            return result
        } catch {
            say("failed: \(error); deleting the \(made.count) VM(s) made so far")
            _ = try? await call("delete", .object(["vm_ids": .array(made.map { .string($0) })]))
            throw error
        }
    }

    private func steps(_ made: inout [String]) async throws -> Value {
        say("creating the golden VM")
        let golden = try await call("create_vm", .object([:]))["vm_id"]?.stringValue ?? ""
        made.append(golden)
        say("preparing \(golden): installing /opt/app/task.sh")
        _ = try await call("exec", .object([
            "vm_id": .string(golden),
            "command": "mkdir -p /opt/app && printf '#!/bin/sh\\necho \"worker $(hostname) computed $(( $1 * $1 ))\"\\n' > /opt/app/task.sh && chmod +x /opt/app/task.sh",
        ]))
        let label = try bridge.registry.commit(label: "golden") == nil ? "golden" : "golden-\(UUID().uuidString.prefix(8).lowercased())"
        say("committing \(golden) as \"\(label)\"")
        let commit = try await call("commit", .object(["vm_id": .string(golden), "label": .string(label)]))["commit_id"]?.stringValue ?? ""
        say("branching \(workers) VMs from \"\(label)\" (\(commit))")
        let branched = try await call("branch", .object(["from": .string(label), "count": .int(workers)]))
        let ids = (branched["vms"]?.arrayValue ?? []).compactMap { $0["vm_id"]?.stringValue }
        made += ids
        var outputs: [Value] = []
        try await withThrowingTaskGroup(of: (Int, Value).self) { group in
            for (index, id) in ids.enumerated() {
                group.addTask {
                    let result = try await call("exec", .object(["vm_id": .string(id), "command": .array(["/opt/app/task.sh", .string(String(index + 1))])]))
                    return (index, result)
                }
            }
            var byIndex: [Int: Value] = [:]
            for try await (index, result) in group {
                byIndex[index] = result
                say("worker \(index + 1) (\(ids[index])): \(result["stdout"]?.stringValue?.trimmingCharacters(in: .whitespacesAndNewlines) ?? "")")
            }
            outputs = (0..<ids.count).map { byIndex[$0] ?? .null }
        }
        say("deleting \(made.count) VMs")
        let deleted = try await call("delete", .object(["vm_ids": .array(made.map { .string($0) })]))
        made.removeAll()
        let left = try await call("list_vms", .object([:]))["vms"]?.arrayValue?.count ?? -1
        say("done: \(left) VM(s) left")
        return .object([
            "golden_vm": .string(golden), "commit_id": .string(commit), "label": .string(label),
            "workers": .array(zip(ids, outputs).map { id, out in
                .object(["vm_id": .string(id), "stdout": out["stdout"] ?? .null, "exit_code": out["exit_code"] ?? .null])
            }),
            "deleted": deleted["deleted"] ?? .array([]),
            "vms_left": .int(left),
        ])
    }
}
