import Foundation
import Testing
@testable import VersSwarm

/// A real OpenSSH server on loopback for one test: its own host key, an
/// authorized client key, root's shell start-up neutralised (SetEnv SHLVL=1).
/// Stopped by PID when the body returns or throws.
func withSSHD(_ body: (_ port: Int, _ clientKey: String) async throws -> Void) async throws {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("vs-sshd-\(UUID().uuidString.prefix(8))").path
    try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: dir) }
    try await ProcessRunner.check("/usr/bin/ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", dir + "/host"])
    try await ProcessRunner.check("/usr/bin/ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", dir + "/client"])
    try FileManager.default.copyItem(atPath: dir + "/client.pub", toPath: dir + "/authorized_keys")
    try FileManager.default.createDirectory(atPath: "/run/sshd", withIntermediateDirectories: true)
    let port = Int.random(in: 20000...60000)
    let config = """
        Port \(port)
        ListenAddress 127.0.0.1
        HostKey \(dir)/host
        AuthorizedKeysFile \(dir)/authorized_keys
        PermitRootLogin prohibit-password
        PasswordAuthentication no
        StrictModes no
        UsePAM no
        PidFile \(dir)/sshd.pid
        SetEnv SHLVL=1
        """
    try config.write(toFile: dir + "/sshd_config", atomically: true, encoding: .utf8)
    // sshd daemonizes once it listens; it is stopped by the PID it writes.
    try await ProcessRunner.check("/usr/sbin/sshd", ["-f", dir + "/sshd_config"])
    defer {
        if let pid = (try? String(contentsOfFile: dir + "/sshd.pid", encoding: .utf8)).flatMap({ Int32($0.trimmingCharacters(in: .whitespacesAndNewlines)) }) {
            kill(pid, SIGTERM)
        }
    }
    // Wait until it accepts connections.
    for _ in 0..<200 {
        if (try? CurlStream(host: "127.0.0.1", port: port, tls: nil, connectTo: nil, timeout: 1)) != nil { break }
        try await Task.sleep(for: .milliseconds(20))
    }
    try await body(port, try String(contentsOfFile: dir + "/client", encoding: .utf8))
}


@Suite("libssh2 sessions over curl streams, against a real sshd", .serialized)
struct SSHSessionTests {
    private func connect(_ port: Int, _ key: String, known: [UInt8]? = nil) throws -> SSHSession {
        let stream = try CurlStream(host: "127.0.0.1", port: port, tls: nil, connectTo: nil, timeout: 5)
        return try SSHSession(vmID: "test", stream: stream, user: "root", privateKey: key, knownHostKey: known, timeout: 10)
    }

    @Test("exec returns stdout, stderr and the exit code, with stdin delivered")
    func execRoundTrip() async throws {
        try await withSSHD { port, key in
            let session = try connect(port, key)
            let r = try session.exec("cat; echo err >&2; exit 3", stdin: Array("in".utf8), limit: 1 << 16) { false }
            #expect(r.stdout.text == "in")
            #expect(r.stderr.text == "err\n")
            #expect(r.exitCode == 3)
        }
    }

    @Test("megabytes of stdin pass through a command that echoes them while it reads")
    func largeStdin() async throws {
        try await withSSHD { port, key in
            let session = try connect(port, key)
            let input = (0..<(4 << 20)).map { UInt8(truncatingIfNeeded: $0 &* 31) }
            let r = try session.exec("cat; echo done >&2", stdin: input, limit: 8 << 20) { false }
            #expect(r.stdout.total == input.count)
            #expect(r.stderr.text == "done\n")
            #expect(r.exitCode == 0)
        }
    }

    @Test("one session carries many concurrent channels")
    func concurrentChannels() async throws {
        try await withSSHD { port, key in
            let session = try connect(port, key)
            let outputs = try await withThrowingTaskGroup(of: String.self) { group in
                // More than sshd's default MaxSessions (10): the rest wait for a channel to close.
                for i in 0..<16 {
                    group.addTask {
                        try await DedicatedThread.run { try session.exec("sleep 0.2; echo \(i)", stdin: nil, limit: 1024) { false }.stdout.text }
                    }
                }
                return try await group.reduce(into: Set<String>()) { $0.insert($1) }
            }
            #expect(outputs == Set((0..<16).map { "\($0)\n" }))
        }
    }

    @Test("a changed host key is refused")
    func hostKeyPinned() async throws {
        try await withSSHD { port, key in
            #expect(throws: SSHError.self) { _ = try connect(port, key, known: [UInt8](repeating: 7, count: 32)) }
        }
    }

    @Test("a wrong key fails authentication with a clear error")
    func wrongKey() async throws {
        try await withSSHD { port, _ in
            try await withSSHD { _, otherKey in
                do {
                    _ = try connect(port, otherKey)
                    Issue.record("authenticated with the wrong key")
                } catch let error as SSHError {
                    #expect(error.step == "public-key authentication")
                }
            }
        }
    }
}
