import Foundation
internal import CLibSSH2

/// One SSH session (libssh2) over a CurlStream, shared by concurrent
/// channels: libssh2 runs non-blocking and every call on the session holds
/// its lock, so one channel waiting for data never blocks another.
final class SSHSession: @unchecked Sendable {
    let vmID: String
    private let stream: CurlStream
    private let session: OpaquePointer
    private let lock = NSLock()
    /// Held from opening a channel until its exec request is answered: libssh2
    /// 1.10 fails a non-blocking channel request that reads another channel's
    /// reply ("Failed waiting for channel success"), so setups go one at a time.
    /// Reading output never needs it.
    private let setupLock = NSLock()
    private var closed = false
    /// An opened, unused channel: the next exec skips the open round trip.
    private var spare: OpaquePointer?
    /// Set when opening a spare failed (e.g. the server's MaxSessions): stop trying.
    private var warmingFailed = false
    /// Set once the transport failed: the pool replaces the session.
    private(set) var isDead = false
    /// SHA-256 of the server's host key.
    private(set) var hostKeySHA256: [UInt8] = []

    private static let libraryInit: Void = { _ = libssh2_init(0) }()

    /// Connects, handshakes, checks the host key against `knownHostKey`
    /// (when one is remembered) and authenticates as `user` with `privateKey`.
    init(vmID: String, stream: CurlStream, user: String, privateKey: String, knownHostKey: [UInt8]?, timeout: Double) throws(SSHError) {
        _ = Self.libraryInit
        self.vmID = vmID
        self.stream = stream
        guard let session = vs_ssh_session_init(Unmanaged.passUnretained(stream).toOpaque()) else {
            throw SSHError(vmID: vmID, step: "session init", code: 0, message: "libssh2_session_init failed", sessionDead: true)
        }
        self.session = session
        vs_ssh_set_send(session, sshSend)
        vs_ssh_set_recv(session, sshRecv)
        libssh2_session_set_blocking(session, 0)
        libssh2_keepalive_config(session, 1, 10)
        let deadline = ContinuousClock.now + .seconds(timeout)
        var failure: SSHError?
        do throws(SSHError) {
            try call("handshake", deadline: deadline) { libssh2_session_handshake(session, stream.socket) }
            guard let hash = libssh2_hostkey_hash(session, Int32(LIBSSH2_HOSTKEY_HASH_SHA256)) else {
                throw SSHError(vmID: vmID, step: "host key", code: 0, message: "the server sent no host key", sessionDead: true)
            }
            hostKeySHA256 = Array(UnsafeRawBufferPointer(start: hash, count: 32).bindMemory(to: UInt8.self))
            if let knownHostKey, knownHostKey != hostKeySHA256 {
                throw SSHError(vmID: vmID, step: "host key", code: 0,
                               message: "the host key changed since first use (possible man-in-the-middle); delete the VM's known host entry if it was rebuilt",
                               sessionDead: true)
            }
            let key = Array(privateKey.utf8)
            try call("public-key authentication", deadline: deadline) {
                key.withUnsafeBufferPointer { buf in
                    buf.withMemoryRebound(to: CChar.self) { vs_ssh_auth_key(session, user, $0.baseAddress, $0.count) }
                }
            }
        } catch {
            failure = error
        }
        if let failure {
            close()
            throw failure
        }
    }

    deinit {
        close()
    }

    /// Ends the session and frees it.
    func close() {
        lock.lock()
        defer { lock.unlock() }
        guard !closed else { return }
        closed = true
        libssh2_session_set_blocking(session, 0)
        _ = libssh2_session_disconnect_ex(session, SSH_DISCONNECT_BY_APPLICATION, "bye", "")
        libssh2_session_free(session)
    }

    // MARK: - Non-blocking calls

    private func locked<T>(_ body: () -> T) -> T {
        lock.lock()
        defer { lock.unlock() }
        return body()
    }

    private func lastError() -> (Int32, String) {
        var message: UnsafeMutablePointer<CChar>?
        var length: Int32 = 0
        let code = libssh2_session_last_error(session, &message, &length, 0)
        return (code, message.map { String(cString: $0) } ?? "unknown error")
    }

    /// Waits until the socket is ready in the direction libssh2 is blocked
    /// on (or 10 ms pass: a TLS layer may hold decrypted bytes the socket
    /// no longer shows).
    private func waitSocket() {
        let directions = locked { libssh2_session_block_directions(session) }
        var events: Int16 = 0
        if directions & LIBSSH2_SESSION_BLOCK_INBOUND != 0 { events |= Int16(POLLIN) }
        if directions & LIBSSH2_SESSION_BLOCK_OUTBOUND != 0 { events |= Int16(POLLOUT) }
        var fd = pollfd(fd: stream.socket, events: events == 0 ? Int16(POLLIN) : events, revents: 0)
        _ = poll(&fd, 1, 10)
    }

    private func fail(_ step: String, _ code: Int32) -> SSHError {
        let (_, message) = locked { lastError() }
        let transport = code == LIBSSH2_ERROR_SOCKET_SEND || code == LIBSSH2_ERROR_SOCKET_RECV
            || code == LIBSSH2_ERROR_SOCKET_DISCONNECT || code == LIBSSH2_ERROR_TIMEOUT || code == LIBSSH2_ERROR_KEX_FAILURE
            || code == LIBSSH2_ERROR_SOCKET_TIMEOUT || code == LIBSSH2_ERROR_BANNER_RECV || code == LIBSSH2_ERROR_DECRYPT
        if transport { isDead = true }
        return SSHError(vmID: vmID, step: step, code: code, message: message, sessionDead: transport)
    }

    /// Repeats a libssh2 call returning an int code while it would block.
    private func call(_ step: String, deadline: ContinuousClock.Instant, _ op: () -> Int32) throws(SSHError) {
        while true {
            let rc = locked(op)
            if rc == LIBSSH2_ERROR_EAGAIN {
                if ContinuousClock.now > deadline {
                    isDead = true
                    throw SSHError(vmID: vmID, step: step, code: rc, message: "timed out", sessionDead: true)
                }
                waitSocket()
                continue
            }
            if rc < 0 { throw fail(step, rc) }
            return
        }
    }

    // MARK: - Exec

    /// What a remote command did.
    struct ExecOutcome {
        var exitCode: Int
        var signal: String?
        var stdout: OutputCapture
        var stderr: OutputCapture
        /// True when `stop` ended the wait (timeout or cancellation).
        var stopped: Bool
    }

    /// Runs `command` on a new channel: writes `stdin`, reads both streams
    /// (bounded) until the command ends or `stop()` says to give up.
    func exec(_ command: String, stdin: [UInt8]?, limit: Int, stop: () -> Bool) throws(SSHError) -> ExecOutcome {
        let setupDeadline = ContinuousClock.now + .seconds(30)
        setupLock.lock()
        var setupHeld = true
        defer { if setupHeld { setupLock.unlock() } }
        var channel: OpaquePointer? = locked {
            defer { spare = nil }
            return spare
        }
        while channel == nil {
            channel = locked { vs_ssh_channel_open(session) }
            if channel != nil { break }
            let code = locked { libssh2_session_last_errno(session) }
            if ContinuousClock.now > setupDeadline { throw SSHError(vmID: vmID, step: "open channel", code: code, message: "timed out", sessionDead: true) }
            if code == LIBSSH2_ERROR_CHANNEL_FAILURE {
                // The server refused another channel (sshd's MaxSessions): wait for one to close.
                setupLock.unlock()
                Thread.sleep(forTimeInterval: 0.02)
                setupLock.lock()
                continue
            }
            guard code == LIBSSH2_ERROR_EAGAIN else { throw fail("open channel", code) }
            waitSocket()
        }
        guard let channel else { throw SSHError(vmID: vmID, step: "open channel", code: 0, message: "no channel", sessionDead: false) }
        defer { _ = locked { libssh2_channel_free(channel) } }

        try call("exec", deadline: setupDeadline) { vs_ssh_channel_exec(channel, command) }
        setupLock.unlock()
        setupHeld = false
        do {
            return try run(channel, stdin: stdin, limit: limit, stop: stop)
        } catch {
            var started = error
            started.commandStarted = true
            throw started
        }
    }

    /// Feeds stdin to a command the server has started and collects its
    /// output and exit status.
    private func run(_ channel: OpaquePointer, stdin: [UInt8]?, limit: Int, stop: () -> Bool) throws(SSHError) -> ExecOutcome {
        var out = OutputCapture(limit: limit)
        var err = OutputCapture(limit: limit)
        var buffer = [CChar](repeating: 0, count: 32 << 10)
        /// Reads what both streams have now; true when anything arrived.
        func drain() throws(SSHError) -> Bool {
            var progressed = false
            for stderrStream in [false, true] {
                while true {
                    let n = buffer.withUnsafeMutableBufferPointer { p in
                        locked {
                            stderrStream ? vs_ssh_channel_read_stderr(channel, p.baseAddress, p.count)
                                : vs_ssh_channel_read(channel, p.baseAddress, p.count)
                        }
                    }
                    if n > 0 {
                        buffer.withUnsafeBytes { raw in
                            let bytes = UnsafeRawBufferPointer(rebasing: raw[0..<n])
                            if stderrStream { err.append(bytes) } else { out.append(bytes) }
                        }
                        progressed = true
                        continue
                    }
                    if n == Int(LIBSSH2_ERROR_EAGAIN) || n == 0 { break }
                    throw fail("read output", Int32(n))
                }
            }
            return progressed
        }

        var stopped = false
        if let stdin, !stdin.isEmpty {
            var offset = 0
            while offset < stdin.count {
                let n = stdin.withUnsafeBytes { raw -> Int in
                    guard let base = raw.baseAddress?.assumingMemoryBound(to: CChar.self) else { return 0 }
                    return locked { vs_ssh_channel_write(channel, base + offset, raw.count - offset) }
                }
                if n == Int(LIBSSH2_ERROR_EAGAIN) {
                    // The window is full: keep reading output so a command that writes before it reads cannot stall us.
                    if stop() {
                        stopped = true
                        break
                    }
                    if try !drain() { waitSocket() }
                    continue
                }
                if n < 0 { throw fail("write stdin", Int32(n)) }
                offset += n
            }
        }
        if !stopped {
            try call("send EOF", deadline: ContinuousClock.now + .seconds(30)) { vs_ssh_channel_eof_sent(channel) }
        }
        warmStep()

        while !stopped {
            let progressed = try drain()
            if locked({ libssh2_channel_eof(channel) }) != 0 { break }
            if stop() {
                stopped = true
                break
            }
            if !progressed {
                warmStep()
                waitSocket()
            }
        }
        if !stopped {
            try call("close channel", deadline: ContinuousClock.now + .seconds(10)) { libssh2_channel_close(channel) }
            try call("wait for close", deadline: ContinuousClock.now + .seconds(10)) { libssh2_channel_wait_closed(channel) }
        }
        let status = locked { libssh2_channel_get_exit_status(channel) }
        var signalName: UnsafeMutablePointer<CChar>?
        var signalLength = 0
        _ = locked { libssh2_channel_get_exit_signal(channel, &signalName, &signalLength, nil, nil, nil, nil) }
        let signal = signalName.map { String(cString: $0) }
        if let signalName { free(signalName) }
        return ExecOutcome(exitCode: Int(status), signal: signal, stdout: out, stderr: err, stopped: stopped)
    }

    /// Advances opening a spare channel by one non-blocking step, while a
    /// command runs: the open round trip then overlaps the command instead
    /// of delaying the next exec. Any caller's open may complete it; channels
    /// are interchangeable.
    private func warmStep() {
        guard setupLock.try() else { return }
        defer { setupLock.unlock() }
        locked {
            guard spare == nil, !warmingFailed, !closed else { return }
            if let channel = vs_ssh_channel_open(session) {
                spare = channel
            } else if libssh2_session_last_errno(session) != LIBSSH2_ERROR_EAGAIN {
                warmingFailed = true
            }
        }
    }

    /// Sends a keepalive when one is due; marks the session dead when it fails.
    func keepalive() {
        var next: Int32 = 0
        let rc = locked { libssh2_keepalive_send(session, &next) }
        if rc < 0 && rc != LIBSSH2_ERROR_EAGAIN { isDead = true }
    }
}

// MARK: - Transport callbacks

private let sshSend: vs_ssh_send_fn = { _, buffer, length, _, abstract in
    guard let buffer, let raw = abstract?.pointee else { return -Int(ECONNRESET) }
    switch Unmanaged<CurlStream>.fromOpaque(raw).takeUnretainedValue().send(buffer, length) {
    case .success(0): return -Int(EAGAIN)
    case .success(let n): return n
    case .failure: return -Int(ECONNRESET)
    }
}

private let sshRecv: vs_ssh_recv_fn = { _, buffer, length, _, abstract in
    guard let buffer, let raw = abstract?.pointee else { return -Int(ECONNRESET) }
    switch Unmanaged<CurlStream>.fromOpaque(raw).takeUnretainedValue().receive(buffer, length) {
    case .success(nil): return -Int(EAGAIN)
    case .success(let n?): return n
    case .failure: return -Int(ECONNRESET)
    }
}
