import Foundation
import MCP
import Testing
@testable import VersSwarm

@Suite("swarm_map plans")
struct SwarmPlanTests {
    private func plan(_ json: String) throws -> SwarmPlan {
        try SwarmPlan(ToolArguments(try JSONCoding.parse(json), path: "arguments"), defaultConcurrency: 32)
    }

    @Test("template inputs are single-quoted: sh sees each input as one literal word",
          arguments: ["$(touch /tmp/x)", "a; b", "x'y", "`id`", "", "  spaced  ", "\\n"])
    func quoting(_ input: String) async throws {
        let p = try plan(#"{"from":"g","template":"printf %s {input}","inputs":[\#(String(data: try JSONEncoder().encode(input), encoding: .utf8) ?? "")]}"#)
        let finished = try await ProcessRunner.run("/bin/sh", Array(p.tasks[0].request.argv.dropFirst()))
        #expect(finished.stdout.text == input)
    }

    @Test("concurrency defaults to the backend's, capped by the task count")
    func defaults() throws {
        #expect(try plan(#"{"from":"g","tasks":["true","true"]}"#).concurrency == 2)
        #expect(try plan(#"{"from":"g","template":"echo {input} {index}","inputs":[1,2,3]}"#).tasks[2].request.argv.last == "echo '3' 2")
    }

    @Test("mistakes name their field", arguments: [
        (#"{"from":"g","tasks":[]}"#, "arguments.tasks"),
        (#"{"from":"g","tasks":["true"],"concurrency":0}"#, "arguments.concurrency"),
        (#"{"from":"g","tasks":["true"],"template":"{input}"}"#, "arguments.template"),
        (#"{"from":"g","template":"echo","inputs":[1]}"#, "arguments.template"),
        (#"{"from":"g","tasks":["true"],"inputs":[1]}"#, "arguments.inputs"),
        (#"{"from":"g","tasks":[{"command":"true","bogus":1}]}"#, "arguments.tasks[0].bogus"),
        (#"{"from":"g","tasks":["true"],"mode":"some"}"#, "arguments.mode"),
        (#"{"from":"g","tasks":["true"],"retries":11}"#, "arguments.retries"),
        (#"{"from":"g","template":"{input}","inputs":[{"a":1}]}"#, "arguments.inputs[0]"),
    ])
    func errors(_ json: String, _ path: String) throws {
        do {
            _ = try plan(json)
            Issue.record("accepted \(json)")
        } catch let error as RPCError {
            #expect(error.data?["path"] == .string(path))
        }
    }
}
