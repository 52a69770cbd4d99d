import Foundation
import Testing
@testable import VersSwarm

@Suite("The remote exec line")
struct RemoteCommandTests {
    @Test("the line runs argv verbatim, with env and cwd, and reports its shell's PID first")
    func runsVerbatim() async throws {
        let request = ExecRequest(argv: ["printf", "%s|%s|%s", "a b", "$(id)", "it's"], env: ["GREETING": "hi 'there'"], cwd: "/tmp")
        let finished = try await ProcessRunner.run("/bin/sh", ["-c", RemoteCommand.line(request) + "; echo unreachable"])
        #expect(finished.stdout.text == "a b|$(id)|it's")
        let (pid, rest) = RemoteCommand.splitMarker(finished.stderr.text)
        #expect(pid != nil)
        #expect(rest == "")
        let env = try await ProcessRunner.run("/bin/sh", ["-c", RemoteCommand.line(ExecRequest(argv: ["sh", "-c", "echo \"$GREETING\"; pwd"], env: ["GREETING": "hi 'there'"], cwd: "/tmp"))])
        #expect(env.stdout.text == "hi 'there'\n/tmp\n")
    }

    @Test("an argv runs that program, never a shell builtin of the same name")
    func argvIsNeverABuiltin() async throws {
        // dash's builtin echo would turn \n into a newline; /bin/echo prints it as is.
        let finished = try await ProcessRunner.run("/bin/sh", ["-c", RemoteCommand.line(ExecRequest(argv: ["echo", "a\\nb"]))])
        #expect(finished.stdout.text == "a\\nb\n")
        let missing = try await ProcessRunner.run("/bin/sh", ["-c", RemoteCommand.line(ExecRequest(argv: ["exit", "3"]))])
        #expect(missing.status == 127)
    }

    /// Runs `line` as sshd would: the login shell /bin/sh, named `name` in $0.
    private func asLoginShell(named name: String, _ line: String) async throws -> (pid: Int?, stdout: String, status: Int) {
        let finished = try await ProcessRunner.run("/bin/bash", ["-c", "exec -a \"$1\" /bin/sh -c \"$2\"", "bash", name, line])
        return (RemoteCommand.splitMarker(finished.stderr.text).pid, finished.stdout.text, finished.status)
    }

    @Test("a string command runs in a login shell that is sh, and under /bin/sh -c in any other")
    func stringCommands() async throws {
        let script = ExecRequest(argv: ExecRequest.shellArgv("echo $$ $0; exit 3"))
        let inSh = try await asLoginShell(named: "sh", RemoteCommand.line(script))
        #expect(inSh.stdout == "\(try #require(inSh.pid)) sh\n")
        #expect(inSh.status == 3)
        let inBash = try await asLoginShell(named: "bash", RemoteCommand.line(script))
        #expect(inBash.stdout == "\(try #require(inBash.pid)) /bin/sh\n")
        #expect(inBash.status == 3)
        let quoted = try await asLoginShell(named: "sh", RemoteCommand.line(ExecRequest(argv: ExecRequest.shellArgv("printf '%s' \"it's\""))))
        #expect(quoted.stdout == "it's")
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
