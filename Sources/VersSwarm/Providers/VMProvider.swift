import Foundation

/// The shape of a new VM.
public struct VMSpec: Sendable {
    public var vcpuCount: Int?
    public var memSizeMiB: Int?
    public var fsSizeMiB: Int?
    public var image: String?
    /// Labels the backend should carry (Vers: `vm_config.labels`).
    public var labels: [String: String]

    public init(vcpuCount: Int? = nil, memSizeMiB: Int? = nil, fsSizeMiB: Int? = nil, image: String? = nil, labels: [String: String] = [:]) {
        self.vcpuCount = vcpuCount
        self.memSizeMiB = memSizeMiB
        self.fsSizeMiB = fsSizeMiB
        self.image = image
        self.labels = labels
    }
}

/// A VM the backend just made.
public struct CreatedVM: Sendable {
    public var vmID: String
    /// Limits or features the backend could not honour, said plainly.
    public var warnings: [String]
}

/// One command to run on a VM.
public struct ExecRequest: Sendable {
    /// The program and its arguments (a string command is `["sh", "-c", cmd]`).
    public var argv: [String]
    public var env: [String: String]
    public var cwd: String?
    public var stdin: [UInt8]?
    /// Seconds before the whole process tree is killed; nil waits forever.
    public var timeout: Double?
    /// Bytes kept per stream (head and tail); the middle is elided.
    public var maxOutputBytes: Int

    public init(argv: [String], env: [String: String] = [:], cwd: String? = nil, stdin: [UInt8]? = nil,
                timeout: Double? = nil, maxOutputBytes: Int = ExecRequest.defaultMaxOutputBytes) {
        self.argv = argv
        self.env = env
        self.cwd = cwd
        self.stdin = stdin
        self.timeout = timeout
        self.maxOutputBytes = maxOutputBytes
    }

    /// 256 KiB per stream unless the caller asks otherwise.
    public static let defaultMaxOutputBytes = 256 << 10

    /// The argv of a string command: `/bin/sh -c command`.
    public static func shellArgv(_ command: String) -> [String] {
        ["/bin/sh", "-c", command]
    }

    /// The command of a string command (argv exactly `/bin/sh -c CMD`).
    public var shellScript: String? {
        argv.count == 3 && argv == Self.shellArgv(argv[2]) ? argv[2] : nil
    }
}

/// What a command did.
public struct ExecResult: Sendable {
    /// The exit status; 128+N when killed by signal N; 124 on timeout.
    public var exitCode: Int
    public var stdout: String
    public var stderr: String
    public var durationMS: Int
    public var timedOut: Bool
    /// True when either stream was longer than `maxOutputBytes` and its middle was elided.
    public var truncated: Bool

    /// The exit code reported for a command killed by its timeout.
    public static let timeoutExitCode = 124
}

/// What a branch call made; `failure` is set when it stopped part-way.
public struct BranchOutcome: Sendable {
    public var vmIDs: [String]
    public var failure: ProviderError?
}

/// A VM as the backend sees it.
public struct ProviderVM: Sendable {
    public var vmID: String
    public var state: String
    /// The bridge process that made it, when the backend knows.
    public var creator: Owner?
    /// Labels the backend keeps on it (Vers).
    public var labels: [String: String] = [:]
    /// When the backend made it, when it says (Vers).
    public var createdAt: Date?
}

/// The result of a delete.
public enum DeleteOutcome: Sendable {
    case deleted
    case notFound
}

/// One line of `vers-swarm doctor`.
public struct DoctorCheck: Sendable {
    public enum Status: String, Sendable { case ok, warn, fail }
    public var name: String
    public var status: Status
    public var detail: String

    public init(_ name: String, _ status: Status, _ detail: String) {
        self.name = name
        self.status = status
        self.detail = detail
    }
}

/// A backend failure, with the facts an agent needs and the next step.
public struct ProviderError: Error, Sendable, CustomStringConvertible {
    public var kind: ToolError.Kind
    public var message: String

    public init(_ kind: ToolError.Kind, _ message: String) {
        self.kind = kind
        self.message = message
    }

    public var description: String { message }

    static func vmNotFound(_ id: String) -> ProviderError {
        let error = ToolError.vmNotFound(id)
        return ProviderError(error.kind, error.message)
    }
}

/// A place VMs come from: the embedded local backend or Vers.
public protocol VMProvider: Sendable {
    /// "local" or "vers".
    var name: String { get }
    /// How VMs are isolated ("namespaces+overlayfs", "microvm", "none").
    var isolation: String { get }
    /// How many swarm tasks run at once when the caller does not say.
    var defaultConcurrency: Int { get }
    /// Creates a VM and waits until it accepts exec.
    func create(_ spec: VMSpec) async throws -> CreatedVM
    /// Freezes the VM's state into an immutable commit; returns the commit id.
    /// `name` and `description` are sent where the backend keeps them.
    func commit(vmID: String, name: String?, description: String?) async throws -> String
    /// Makes `count` copy-on-write VMs from a commit (what was made even on failure).
    func branch(commitID: String, count: Int) async -> BranchOutcome
    /// Runs one command.
    func exec(vmID: String, _ request: ExecRequest) async throws -> ExecResult
    /// Deletes a VM: every process and its storage.
    func delete(vmID: String) async throws -> DeleteOutcome
    /// Every VM the backend holds for us.
    func list() async throws -> [ProviderVM]
    /// Whether the backend has this commit.
    func hasCommit(_ commitID: String) async -> Bool
    /// Health checks for `vers-swarm doctor`.
    func doctor() async -> [DoctorCheck]
    /// Records who a VM belongs to (session, swarm) where the backend keeps labels.
    func tag(vmID: String, session: String?, swarm: String?) async
    /// How to log in with OpenSSH, for backends with SSH.
    func sshCredentials(vmID: String) async throws -> SSHCredentials
}

/// How a person or a sub-agent logs in to a VM with OpenSSH.
public struct SSHCredentials: Sendable {
    public var host: String
    public var user: String
    /// The private key file (0600); the key text itself is never returned.
    public var keyFile: String
    /// A ready command line.
    public var command: String
}

extension VMProvider {
    public func tag(vmID: String, session: String?, swarm: String?) async {}

    /// Backends without SSH say so.
    public func sshCredentials(vmID: String) async throws -> SSHCredentials {
        throw ProviderError(.unavailable, "\(name) VMs have no SSH access: use exec, read_file and write_file")
    }
}

/// The labels vers-swarm puts on cloud VMs.
public enum VMLabel {
    public static let owner = "vers-swarm.owner"
    public static let session = "vers-swarm.session"
    public static let swarm = "vers-swarm.swarm"
    /// A token naming the one create call that made the VM, so a VM whose
    /// create answer was lost can be found.
    public static let request = "vers-swarm.request"
}
