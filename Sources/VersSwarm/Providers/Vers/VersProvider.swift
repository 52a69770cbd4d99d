import Foundation
import Logging
import MCP

/// The Vers backend: REST through libcurl (vers-api.md), exec over SSH
/// inside TLS through libssh2, or through the exec endpoint when
/// VERS_SWARM_EXEC=api. Every VM carries labels naming this registry, so
/// the cloud itself can rebuild it (`gc --reconcile`).
public final class VersProvider: VMProvider {
    public let name = "vers"
    public let isolation = "microvm"
    /// New organisations hold 8 vCPUs: a swarm of 1-vCPU branches fits 8 at once.
    public let defaultConcurrency = 8
    let configuration: VersConfiguration
    let api: VersAPI
    let ssh: VersSSH
    let logger: Logger
    /// Labels every VM made here carries (owner registry, …).
    let baseLabels: [String: String]

    /// Most VMs one branch call may ask for.
    static let maxBranchPerCall = 255

    public init(home: String, registryID: String, logger: Logger) throws {
        configuration = try VersConfiguration.fromEnvironment()
        let http = HTTPClient(tls: configuration.tls)
        api = VersAPI(configuration: configuration, http: http, logger: logger)
        ssh = VersSSH(configuration: configuration, api: api, home: home)
        self.logger = logger
        baseLabels = [VMLabel.owner: registryID]
    }

    /// SSH connections (TCP + TLS handshakes) opened so far, for benchmarks.
    public var sshConnectionsOpened: Int {
        get async { await ssh.connectionsOpened }
    }

    // MARK: - Lifecycle

    public func create(_ spec: VMSpec) async throws -> CreatedVM {
        let request = UUID().uuidString.lowercased()
        let labels = baseLabels.merging(spec.labels) { _, new in new }.merging([VMLabel.request: request]) { _, new in new }
        var config: [String: Value] = ["labels": .object(labels.mapValues { .string($0) })]
        if let v = spec.vcpuCount { config["vcpu_count"] = .int(v) }
        if let m = spec.memSizeMiB { config["mem_size_mib"] = .int(m) }
        if let f = spec.fsSizeMiB { config["fs_size_mib"] = .int(f) }
        if let image = spec.image { config["image_name"] = .string(image) }
        // Never retried blindly: a second try could make a second VM. When the
        // answer is lost instead (a proxy time-out, a dropped connection, a
        // garbled body), the VM may exist all the same: find it by its label.
        let failure: ProviderError
        do {
            let reply = try await api.call("POST", "/vm/new_root", query: ["wait_boot": "true"],
                                           body: .object(["vm_config": .object(config)]), retry: .never, timeout: 600)
            if let id = reply.json?["vm_id"]?.stringValue { return CreatedVM(vmID: id, warnings: []) }
            failure = ProviderError(.backend, "the Vers API answered the create with no vm_id: \(VersAPI.snippet(reply.text))")
        } catch let error as ProviderError where error.kind == .backend {
            failure = error
        }
        if let made = await listAfterLostAnswer().first(where: { $0.labels[VMLabel.request] == request }) {
            logger.warning("the create answer was lost; found the VM it made", metadata: ["vm_id": "\(made.vmID)", "error": "\(failure)"])
            return CreatedVM(vmID: made.vmID, warnings: ["the Vers API's answer to the create was lost (\(failure.message)); the VM it made was found by its request label and is this one"])
        }
        throw ProviderError(.backend, failure.message + "; no VM of this create call is listed (should one appear later, `vers-swarm gc --reconcile` records it for list_vms and delete)")
    }

    public func commit(vmID: String, name: String?, description: String?) async throws -> String {
        let body: Value = .compact(["name": name.map { .string($0) }, "description": description.map { .string($0) }])
        let reply = try await api.call("POST", "/vm/\(vmID)/commit", query: ["keep_paused": "false"], body: body, retry: .never, timeout: 600)
        guard let id = reply.json?["commit_id"]?.stringValue else {
            throw ProviderError(.backend, "the Vers API committed VM \(vmID) but returned no commit_id")
        }
        return id
    }

    /// The VM ids in a branch answer: `{"vms": [...]}` or a single `{"vm_id"}`.
    static func vmIDs(in json: Value?) -> [String] {
        if let vms = json?["vms"]?.arrayValue { return vms.compactMap { $0["vm_id"]?.stringValue ?? $0.stringValue } }
        return json?["vm_id"]?.stringValue.map { [$0] } ?? []
    }

    public func branch(commitID: String, count: Int) async -> BranchOutcome {
        var made: [String] = []
        while made.count < count {
            let n = min(count - made.count, Self.maxBranchPerCall)
            let started = Date()
            var ids: [String] = []
            var failure: ProviderError?
            do {
                let reply = try await api.call("POST", "/vm/branch/by_commit/\(commitID)", query: ["count": String(n)],
                                               retry: .never, accept: [400, 403, 404, 409, 500, 503], timeout: 600)
                ids = Self.vmIDs(in: reply.json)
                if !(200..<300).contains(reply.status) {
                    let message = reply.json?["error"]?.stringValue ?? VersAPI.snippet(reply.text)
                    let kind: ToolError.Kind = message.lowercased().contains("limit") ? .quota : reply.status == 404 ? .notFound : .backend
                    failure = ProviderError(kind, "branch from \(commitID) failed after \(made.count + ids.count) VM(s) (\(reply.status)): \(configuration.redact(message))")
                } else if ids.isEmpty {
                    failure = ProviderError(.backend, "the Vers API answered the branch with no VMs")
                }
            } catch {
                failure = error as? ProviderError ?? ProviderError(.backend, "\(error)")
            }
            if ids.isEmpty, let lost = failure, lost.kind == .backend {
                // The answer may have been lost after the service made VMs (a proxy
                // time-out, a dropped connection): children carry no labels, so
                // find them by parent, or they would stay billed and unseen.
                ids = await lostChildren(of: commitID, since: started, atMost: n)
                if !ids.isEmpty { failure = ProviderError(.backend, lost.message + " (\(ids.count) VM(s) it made anyway were found)") }
            }
            made += ids
            // Children do not inherit labels: set ours on each.
            for id in ids { await label(id, [:]) }
            if let failure { return BranchOutcome(vmIDs: made, failure: failure) }
        }
        return BranchOutcome(vmIDs: made, failure: nil)
    }

    /// VMs a branch call made although its answer was lost: this owner's VMs
    /// that carry no vers-swarm label yet, were made from `commitID` (the
    /// metadata's parent) and not before the call. More than `atMost` is
    /// not ours to judge: none are taken then.
    private func lostChildren(of commitID: String, since: Date, atMost: Int) async -> [String] {
        let vms = await listAfterLostAnswer()
        let earliest = since.addingTimeInterval(-120)  // allows for clock skew
        var found: [String] = []
        for vm in vms where vm.labels[VMLabel.owner] == nil && (vm.createdAt.map { $0 >= earliest } ?? true) {
            guard let meta = try? await api.call("GET", "/vm/\(vm.vmID)/metadata", retry: .idempotent),
                  meta.json?["parent_commit_id"]?.stringValue == commitID else { continue }
            found.append(vm.vmID)
        }
        if found.count > atMost {
            logger.warning("more unlabelled VMs from the commit than the lost branch asked for; leaving them", metadata: ["commit_id": "\(commitID)", "found": "\(found.count)"])
            return []
        }
        return found
    }

    /// This owner's VMs, a second after an answer was lost (the service may
    /// still be finishing the call); none when the list cannot be had.
    private func listAfterLostAnswer() async -> [ProviderVM] {
        try? await Task.sleep(for: .seconds(1))
        return (try? await list()) ?? []
    }

    /// An RFC 3339 time, with or without fractional seconds.
    static func parseTime(_ text: String) -> Date? {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        if let date = formatter.date(from: text) { return date }
        formatter.formatOptions = [.withInternetDateTime]
        return formatter.date(from: text)
    }

    public func tag(vmID: String, session: String?, swarm: String?) async {
        var extra: [String: String] = [:]
        if let session { extra[VMLabel.session] = session }
        if let swarm { extra[VMLabel.swarm] = swarm }
        await label(vmID, extra)
    }

    public func sshCredentials(vmID: String) async throws -> SSHCredentials {
        _ = try await ssh.privateKey(vmID)
        let keyFile = await ssh.keyPath(vmID)
        let host = configuration.sshHost(vmID)
        var proxy = "openssl s_client -quiet -connect \(configuration.sshConnectTo ?? "%h:443") -servername %h"
        if let ca = configuration.tls.caFile { proxy += " -CAfile \(ca)" }
        if !configuration.tls.insecure { proxy += " -verify_return_error" }
        let command = "ssh -i \(RemoteCommand.quote(keyFile)) -o \(RemoteCommand.quote("ProxyCommand=" + proxy)) -o StrictHostKeyChecking=accept-new root@\(host)"
        return SSHCredentials(host: host, user: "root", keyFile: keyFile, command: command)
    }

    /// Replaces a VM's labels with ours plus `extra` (best effort, logged).
    func label(_ vmID: String, _ extra: [String: String]) async {
        let labels = baseLabels.merging(extra) { _, new in new }
        do {
            _ = try await api.call("PATCH", "/vm/\(vmID)/label", body: .object(["labels": .object(labels.mapValues { .string($0) })]), retry: .idempotent)
        } catch {
            logger.warning("could not label VM", metadata: ["vm_id": "\(vmID)", "error": "\(error)"])
        }
    }

    public func exec(vmID: String, _ request: ExecRequest) async throws -> ExecResult {
        if configuration.execOverAPI { return try await execOverAPI(vmID, request) }
        do {
            return try await ssh.exec(vmID, request) { [self] in (try? await exists(vmID)) != false }
        } catch is CancellationError {
            throw CancellationError()
        } catch {
            // A VM deleted behind our back shows up as a failed connection: say what really happened.
            if (try? await exists(vmID)) == false {
                await ssh.forget(vmID)
                throw ProviderError.vmNotFound(vmID)
            }
            throw error as? ProviderError ?? ProviderError(.backend, configuration.redact("\(error)"))
        }
    }

    private func execOverAPI(_ vmID: String, _ request: ExecRequest) async throws -> ExecResult {
        var body: [String: Value] = ["command": .array(request.argv.map { .string($0) })]
        if !request.env.isEmpty { body["env"] = .object(request.env.mapValues { .string($0) }) }
        if let cwd = request.cwd { body["working_dir"] = .string(cwd) }
        if let stdin = request.stdin { body["stdin"] = .string(String(decoding: stdin, as: UTF8.self)) }
        if let timeout = request.timeout { body["timeout_secs"] = .int(max(1, Int(timeout.rounded(.up)))) }
        let started = ContinuousClock.now
        var out = OutputCapture(limit: request.maxOutputBytes)
        var err = OutputCapture(limit: request.maxOutputBytes)
        let code: Int
        if let timeout = request.timeout, timeout <= Self.syncExecLimit {
            // Short commands: the plain exec endpoint (the service gives up on those after ~30 s).
            let reply = try await api.call("POST", "/vm/\(vmID)/exec", body: .object(body), retry: .never,
                                           accept: [504], timeout: timeout + 30)
            if reply.status == 504 {
                throw ProviderError(.backend, "the Vers exec endpoint gave up (504): long commands belong on SSH (unset VERS_SWARM_EXEC)")
            }
            out.append(Array((reply.json?["stdout"]?.stringValue ?? "").utf8))
            err.append(Array((reply.json?["stderr"]?.stringValue ?? "").utf8))
            code = reply.json?["exit_code"]?.intValue ?? -1
        } else {
            code = try await execStreamed(vmID, body: body, timeout: request.timeout, out: &out, err: &err)
        }
        let elapsed = ContinuousClock.now - started
        let ms = elapsed.milliseconds
        let timedOut = request.timeout.map { Double(ms) / 1000 >= $0 } == true && code != 0
        return ExecResult(exitCode: timedOut ? ExecResult.timeoutExitCode : code, stdout: out.text, stderr: err.text,
                          durationMS: ms, timedOut: timedOut, truncated: out.truncated || err.truncated)
    }

    /// Commands with a timeout up to this many seconds use the synchronous endpoint.
    static let syncExecLimit = 25.0

    /// Runs a command through `exec/stream` (NDJSON chunks, then an exit
    /// line), re-attaching from the last cursor when the stream is cut before
    /// the exit line. Returns the exit code.
    private func execStreamed(_ vmID: String, body: [String: Value], timeout: Double?,
                              out: inout OutputCapture, err: inout OutputCapture) async throws -> Int {
        let execID = UUID().uuidString.lowercased()
        var body = body
        body["exec_id"] = .string(execID)
        var cursor = 0
        var path = "/vm/\(vmID)/exec/stream"
        var request: Value = .object(body)
        for _ in 0..<20 {
            let reply = try await api.call("POST", path, body: request, retry: .never,
                                           timeout: (timeout ?? 3600) + 60, json: false)
            for line in reply.body.split(separator: UInt8(ascii: "\n")) where !line.isEmpty {
                guard let event = try? JSONCoding.parse(Data(line)) else { continue }
                if let c = event["cursor"]?.intValue {
                    guard c > cursor else { continue }
                    cursor = c
                }
                switch event["type"]?.stringValue {
                case "chunk":
                    let bytes = event["data_b64"]?.stringValue.flatMap { Data(base64Encoded: $0) } ?? Data()
                    if event["stream"]?.stringValue == "stderr" { err.append(bytes) } else { out.append(bytes) }
                case "exit":
                    return event["exit_code"]?.intValue ?? -1
                case "error":
                    let message = event["message"]?.stringValue ?? "unknown error"
                    throw ProviderError(.backend, configuration.redact("exec on VM \(vmID) failed: \(message)"))
                default:
                    continue
                }
            }
            // Cut before the exit line: pick the stream up where it stopped.
            path = "/vm/\(vmID)/exec/stream/attach"
            request = .object(["exec_id": .string(execID), "cursor": .int(cursor)])
        }
        throw ProviderError(.backend, "the exec stream of VM \(vmID) kept ending before the command did")
    }

    /// Whether the VM still exists (GET status; 404 means gone).
    func exists(_ vmID: String) async throws -> Bool {
        let reply = try await api.call("GET", "/vm/\(vmID)/status", retry: .idempotent, accept: [403, 404])
        return (200..<300).contains(reply.status)
    }

    public func delete(vmID: String) async throws -> DeleteOutcome {
        let reply = try await api.call("DELETE", "/vm/\(vmID)", retry: .idempotent, accept: [403, 404])
        await ssh.forget(vmID)
        if (200..<300).contains(reply.status) { return .deleted }
        // 403 {"error":"Forbidden"} or 404: unknown or already deleted — or a retry of our own delete.
        if try await exists(vmID) {
            throw ProviderError(.backend, "the Vers API refused to delete VM \(vmID) (\(reply.status)): \(VersAPI.snippet(reply.text))")
        }
        return .notFound
    }

    public func list() async throws -> [ProviderVM] {
        let reply = try await api.call("GET", "/vms", retry: .idempotent)
        let items = reply.json?.arrayValue ?? reply.json?["vms"]?.arrayValue ?? []
        return items.compactMap { item in
            guard let id = item["vm_id"]?.stringValue, item["owner_id"]?.stringValue.map({ $0 == configuration.ownerID }) ?? true else { return nil }
            return ProviderVM(vmID: id, state: item["state"]?.stringValue ?? "unknown", creator: nil,
                              labels: (item["labels"]?.objectValue ?? [:]).compactMapValues(\.stringValue),
                              createdAt: item["created_at"]?.stringValue.flatMap(Self.parseTime))
        }
    }

    public func hasCommit(_ commitID: String) async -> Bool {
        // The API tells when a branch names an unknown commit; a UUID is worth trying.
        UUID(uuidString: commitID) != nil
    }

    public func doctor() async -> [DoctorCheck] {
        var checks = [DoctorCheck("vers api", .ok, "\(configuration.baseURL) (owner \(configuration.ownerID))")]
        do {
            let reply = try await api.call("POST", "/keys/validate", retry: .idempotent)
            let valid = reply.json?["valid"]?.boolValue ?? true
            checks.append(DoctorCheck("api key", valid ? .ok : .fail, valid ? "accepted" : "rejected: \(reply.json?["message"]?.stringValue ?? "")"))
        } catch {
            checks.append(DoctorCheck("api key", .fail, "\(error)"))
        }
        checks.append(DoctorCheck("exec", .ok, configuration.execOverAPI ? "REST exec endpoint (VERS_SWARM_EXEC=api)"
            : "SSH inside TLS to \(configuration.sshHost("{vm_id}")):443\(configuration.sshConnectTo.map { " via \($0)" } ?? "")"))
        checks.append(configuration.tls.insecure
            ? DoctorCheck("tls", .warn, "certificate verification is off (VERS_TLS_INSECURE=1)")
            : DoctorCheck("tls", .ok, "certificates verified\(configuration.tls.caFile.map { " against \($0)" } ?? "")"))
        return checks
    }
}
