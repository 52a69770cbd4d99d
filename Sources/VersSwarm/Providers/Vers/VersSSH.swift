import Foundation

/// Pooled SSH access to Vers VMs: one session per VM, kept and shared by
/// concurrent execs, TLS with SNI to `{vm_id}.vm.vers.sh:443`, keys fetched
/// from the API and cached 0600 in the state dir, host keys remembered on
/// first use, a dead session replaced once.
actor VersSSH {
    private let configuration: VersConfiguration
    private let api: VersAPI
    private let home: String
    private var sessions: [String: SSHSession] = [:]
    private var connecting: [String: Task<SSHSession, any Error>] = [:]
    private var keepaliveTask: Task<Void, Never>?
    /// TLS/TCP connections opened, for tests and benchmarks.
    private(set) var connectionsOpened = 0

    init(configuration: VersConfiguration, api: VersAPI, home: String) {
        self.configuration = configuration
        self.api = api
        self.home = home
    }

    /// The VM's private key: cached 0600, else fetched from the API.
    func privateKey(_ vmID: String) async throws -> String {
        let dir = home + "/keys"
        let path = "\(dir)/\(vmID).key"
        if let cached = HostFS.read(path), !cached.isEmpty { return cached }
        let reply = try await api.call("GET", "/vm/\(vmID)/ssh_key", retry: .idempotent)
        guard let key = reply.json?["ssh_private_key"]?.stringValue, !key.isEmpty else {
            throw ProviderError(.backend, "the Vers API returned no SSH key for VM \(vmID)")
        }
        try HostFS.mkdirs(dir, mode: 0o700)
        try HostFS.writeSecret(path, Array(key.utf8))
        return key
    }

    /// Where the key file lives (for ssh_credentials).
    func keyPath(_ vmID: String) -> String { home + "/keys/\(vmID).key" }

    private func knownHostPath(_ vmID: String) -> String { home + "/known_hosts/\(vmID)" }

    /// A live session to the VM, connecting when there is none.
    func session(_ vmID: String, fresh: Bool = false) async throws -> SSHSession {
        if fresh, let old = sessions.removeValue(forKey: vmID) { old.close() }
        if let existing = sessions[vmID], !existing.isDead { return existing }
        if let pending = connecting[vmID] { return try await pending.value }
        let task = Task { try await self.connect(vmID) }
        connecting[vmID] = task
        defer { connecting[vmID] = nil }
        let session = try await task.value
        sessions[vmID] = session
        startKeepalive()
        return session
    }

    /// Every 10 s, pooled sessions send an SSH keepalive (so idle NATs and
    /// proxies keep them) and dead ones are dropped from the pool.
    private func startKeepalive() {
        guard keepaliveTask == nil else { return }
        keepaliveTask = Task { [weak self] in
            while !Task.isCancelled {
                try? await Task.sleep(for: .seconds(10))
                guard let self else { return }
                await self.sendKeepalives()
            }
        }
    }

    private func sendKeepalives() async {
        for (vmID, session) in sessions {
            _ = try? await DedicatedThread.run { session.keepalive() }
            if session.isDead { sessions.removeValue(forKey: vmID)?.close() }
        }
    }

    private func connect(_ vmID: String) async throws -> SSHSession {
        let key = try await privateKey(vmID)
        let known = HostFS.read(knownHostPath(vmID)).flatMap { Data(base64Encoded: $0.trimmingCharacters(in: .whitespacesAndNewlines)) }.map { [UInt8]($0) }
        let host = configuration.sshHost(vmID)
        let configuration = self.configuration
        connectionsOpened += 1
        let session: SSHSession = try await DedicatedThread.run {
            let stream = try CurlStream(host: host, port: 443, tls: configuration.tls, connectTo: configuration.sshConnectTo, timeout: 20)
            return try SSHSession(vmID: vmID, stream: stream, user: "root", privateKey: key, knownHostKey: known, timeout: 20)
        }
        if known == nil {
            try? HostFS.mkdirs(home + "/known_hosts", mode: 0o700)
            try? HostFS.writeAtomically(knownHostPath(vmID), Data(Data(session.hostKeySHA256).base64EncodedString().utf8))
        }
        return session
    }

    /// Drops a VM's session, key and host key (the VM is gone).
    func forget(_ vmID: String) {
        sessions.removeValue(forKey: vmID)?.close()
        unlink(keyPath(vmID))
        unlink(knownHostPath(vmID))
    }

    /// Runs a command over SSH; reconnects once when the pooled session died
    /// before the server accepted the command (a command that may have run is
    /// never sent twice). `stillThere` asks the API whether the VM exists: a
    /// VM that is still booting (or restarting its sshd) gets retried
    /// connections for up to 10 s; a deleted one stops the retries at once.
    func exec(_ vmID: String, _ request: ExecRequest, stillThere: @escaping @Sendable () async -> Bool) async throws -> ExecResult {
        do {
            return try await execOnce(vmID, request, session: try await connected(vmID, fresh: false, stillThere))
        } catch let error as SSHError where error.sessionDead && !error.commandStarted {
            return try await execOnce(vmID, request, session: try await connected(vmID, fresh: true, stillThere))
        }
    }

    /// Curl failures worth another try while a VM comes up (never certificate problems).
    private static let transientCurlCodes: Set<Int> = [7, 28, 52, 55, 56]

    private func connected(_ vmID: String, fresh: Bool, _ stillThere: @Sendable () async -> Bool) async throws -> SSHSession {
        let giveUp = ContinuousClock.now + .seconds(10)
        var pause = 0.25
        var fresh = fresh
        while true {
            do {
                return try await session(vmID, fresh: fresh)
            } catch {
                let transient: Bool
                switch error {
                case let error as CurlError: transient = Self.transientCurlCodes.contains(error.code)
                case let error as SSHError: transient = error.sessionDead && error.step != "host key"
                default: transient = false
                }
                if Task.isCancelled { throw CancellationError() }
                guard transient, ContinuousClock.now < giveUp, await stillThere() else {
                    if let error = error as? CurlError {
                        throw ProviderError(.backend, "cannot open SSH to VM \(vmID): \(error.message)")
                    }
                    throw error
                }
                try await Task.sleep(for: .seconds(pause))
                pause = min(pause * 2, 4)
                fresh = true
            }
        }
    }

    private func execOnce(_ vmID: String, _ request: ExecRequest, session: SSHSession) async throws -> ExecResult {
        let line = RemoteCommand.line(request)
        let started = ContinuousClock.now
        let deadline = request.timeout.map { started + .seconds($0) }
        let cancelled = Flag()
        let outcome = try await withTaskCancellationHandler {
            try await DedicatedThread.run {
                try session.exec(line, stdin: request.stdin, limit: request.maxOutputBytes + 64) {
                    cancelled.isSet || deadline.map { ContinuousClock.now > $0 } == true
                }
            }
        } onCancel: {
            cancelled.set()
        }
        let (pid, stderr) = RemoteCommand.splitMarker(outcome.stderr.text)
        if outcome.stopped, let pid {
            // Kill the command's whole process group from a second channel.
            _ = try? await DedicatedThread.run {
                try session.exec(RemoteCommand.kill(processGroup: pid), stdin: nil, limit: 4096) { false }
            }
        }
        let elapsed = ContinuousClock.now - started
        let timedOut = outcome.stopped && !cancelled.isSet
        var code = outcome.exitCode
        if let signal = outcome.signal, let number = Self.signalNumbers[signal] { code = 128 + number }
        return ExecResult(
            exitCode: timedOut ? ExecResult.timeoutExitCode : code,
            stdout: outcome.stdout.text, stderr: stderr,
            durationMS: elapsed.milliseconds,
            timedOut: timedOut, truncated: outcome.stdout.truncated || outcome.stderr.truncated)
    }

    static let signalNumbers = ["HUP": 1, "INT": 2, "QUIT": 3, "ILL": 4, "ABRT": 6, "FPE": 8, "KILL": 9, "SEGV": 11, "PIPE": 13, "ALRM": 14, "TERM": 15]
}
