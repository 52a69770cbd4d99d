import Foundation
import Testing
@testable import VersSwarm

@Suite("The remote exec line")
struct RemoteCommandTests {
    @Test("the line runs argv verbatim, with env and cwd, and reports its shell's PID first")
    func runsVerbatim() async throws {
        let request = ExecRequest(argv: ["printf", "%s|%s|%s", "a b", "$(id)", "it's"], env: ["GREETING": "hi 'there'"], cwd: "/tmp")
        let finished = try await ProcessRunner.run("/bin/sh", ["-c", RemoteCommand.line(request)])
        #expect(finished.stdout.text == "a b|$(id)|it's")
        let (pid, rest) = RemoteCommand.splitMarker(finished.stderr.text)
        #expect(pid != nil)
        #expect(rest == "")
        let env = try await ProcessRunner.run("/bin/sh", ["-c", RemoteCommand.line(ExecRequest(argv: ["sh", "-c", "echo \"$GREETING\"; pwd"], env: ["GREETING": "hi 'there'"], cwd: "/tmp"))])
        #expect(env.stdout.text == "hi 'there'\n/tmp\n")
    }

    @Test("the login shell runs argv as `ssh host cmd` would: a builtin such as `true` needs no exec")
    func builtinsRunInTheShell() async throws {
        let finished = try await ProcessRunner.run("/bin/sh", ["-c", RemoteCommand.line(ExecRequest(argv: ["true"]))])
        #expect(finished.status == 0)
        #expect(RemoteCommand.splitMarker(finished.stderr.text).pid != nil)
        let status = try await ProcessRunner.run("/bin/sh", ["-c", RemoteCommand.line(ExecRequest(argv: ["exit", "3"]))])
        #expect(status.status == 3)
        let missing = try await ProcessRunner.run("/bin/sh", ["-c", RemoteCommand.line(ExecRequest(argv: ["no-such-program-xyz"]))])
        #expect(missing.status == 127)
    }

    @Test("a program named by a path runs in the shell's own process: no fork")
    func pathProgramReplacesTheShell() async throws {
        let finished = try await ProcessRunner.run("/bin/sh", ["-c", RemoteCommand.line(ExecRequest(argv: ["/bin/sh", "-c", "echo $$"]))])
        let pid = try #require(RemoteCommand.splitMarker(finished.stderr.text).pid)
        #expect(finished.stdout.text == "\(pid)\n")
    }

    @Test("a missing cwd exits 126 with a message")
    func missingCwd() async throws {
        let finished = try await ProcessRunner.run("/bin/sh", ["-c", RemoteCommand.line(ExecRequest(argv: ["true"], cwd: "/no/such dir"))])
        #expect(finished.status == 126)
        #expect(RemoteCommand.splitMarker(finished.stderr.text).rest.contains("cwd /no/such dir"))
    }

    @Test("stderr without the marker is left alone")
    func noMarker() {
        #expect(RemoteCommand.splitMarker("plain\n").pid == nil)
        #expect(RemoteCommand.splitMarker("plain\n").rest == "plain\n")
    }
}

@Suite("Vers answers")
struct VersAnswerTests {
    @Test("branch answers in both shapes give the VM ids")
    func branchShapes() throws {
        #expect(VersProvider.vmIDs(in: try JSONCoding.parse(#"{"vms":[{"vm_id":"a"},{"vm_id":"b"}]}"#)) == ["a", "b"])
        #expect(VersProvider.vmIDs(in: try JSONCoding.parse(#"{"vm_id":"c"}"#)) == ["c"])
        #expect(VersProvider.vmIDs(in: try JSONCoding.parse(#"{"vms":[{"vm_id":"d"}],"error":"vCPU limit exceeded"}"#)) == ["d"])
        #expect(VersProvider.vmIDs(in: nil) == [])
    }

    @Test("the key, and its secret half, are redacted from any text")
    func redaction() {
        let owner = "727db289-720c-4290-992a-527dfdd1cb0b"
        let secret = String(repeating: "ab", count: 32)
        let config = VersConfiguration(apiKey: owner + secret, baseURL: "http://x", sshHostTemplate: "{vm_id}.vm.test",
                                       sshConnectTo: nil, tls: TLSOptions(), execOverAPI: false)
        let text = config.redact("Bearer \(owner + secret) and \(secret)")
        #expect(!text.contains(secret))
        #expect(config.ownerID == owner)
    }
}
