import Foundation
import GRDB

/// A VM the bridge created or branched, as the registry remembers it.
public struct VMRecord: Codable, Sendable, Equatable, FetchableRecord, PersistableRecord {
    public static let databaseTableName = "vms"

    public var vmID: String
    public var provider: String
    public var parentCommit: String?
    public var session: String?
    public var swarmID: String?
    public var label: String?
    public var state: String
    public var ownerPID: Int?
    /// The owner's start time (clock ticks since boot), so a reused PID is not mistaken for it.
    public var ownerStart: Int?
    public var createdAt: Date

    enum CodingKeys: String, CodingKey {
        case vmID = "vm_id", provider, parentCommit = "parent_commit", session, swarmID = "swarm_id"
        case label, state, ownerPID = "owner_pid", ownerStart = "owner_start", createdAt = "created_at"
    }

    public init(vmID: String, provider: String, parentCommit: String? = nil, session: String? = nil,
                swarmID: String? = nil, label: String? = nil, state: String = "running",
                owner: Owner? = nil, createdAt: Date = Date()) {
        self.vmID = vmID
        self.provider = provider
        self.parentCommit = parentCommit
        self.session = session
        self.swarmID = swarmID
        self.label = label
        self.state = state
        self.ownerPID = owner.map { Int($0.pid) }
        self.ownerStart = owner.map { Int($0.start) }
        self.createdAt = createdAt
    }
}

/// A commit (a frozen VM image) and its optional unique label.
public struct CommitRecord: Codable, Sendable, Equatable, FetchableRecord, PersistableRecord {
    public static let databaseTableName = "commits"

    public var commitID: String
    public var provider: String
    public var label: String?
    public var description: String?
    public var vmID: String?
    public var parentCommit: String?
    public var createdAt: Date

    enum CodingKeys: String, CodingKey {
        case commitID = "commit_id", provider, label, description, vmID = "vm_id"
        case parentCommit = "parent_commit", createdAt = "created_at"
    }

    public init(commitID: String, provider: String, label: String? = nil, description: String? = nil,
                vmID: String? = nil, parentCommit: String? = nil, createdAt: Date = Date()) {
        self.commitID = commitID
        self.provider = provider
        self.label = label
        self.description = description
        self.vmID = vmID
        self.parentCommit = parentCommit
        self.createdAt = createdAt
    }
}

/// A session: a sub-agent's name bound to the VM it works on.
public struct SessionRecord: Codable, Sendable, Equatable, FetchableRecord, PersistableRecord {
    public static let databaseTableName = "sessions"

    public var name: String
    public var vmID: String
    public var createdAt: Date

    enum CodingKeys: String, CodingKey {
        case name, vmID = "vm_id", createdAt = "created_at"
    }

    public init(name: String, vmID: String, createdAt: Date = Date()) {
        self.name = name
        self.vmID = vmID
        self.createdAt = createdAt
    }
}

/// A swarm_map call: which commit it fanned out from and which bridge owns it.
public struct SwarmRecord: Codable, Sendable, Equatable, FetchableRecord, PersistableRecord {
    public static let databaseTableName = "swarms"

    public var swarmID: String
    public var fromCommit: String
    public var ownerPID: Int
    public var ownerStart: Int
    /// running, done, cancelled or abandoned (its owner died).
    public var state: String
    /// none, failed or all.
    public var keep: String
    public var taskCount: Int
    public var createdAt: Date
    public var finishedAt: Date?

    enum CodingKeys: String, CodingKey {
        case swarmID = "swarm_id", fromCommit = "from_commit", ownerPID = "owner_pid", ownerStart = "owner_start"
        case state, keep, taskCount = "task_count", createdAt = "created_at", finishedAt = "finished_at"
    }
}

/// One finished task of a swarm (status ok, failed, timeout, cancelled or error).
public struct SwarmTaskRecord: Codable, Sendable, Equatable, FetchableRecord, PersistableRecord {
    public static let databaseTableName = "swarm_tasks"

    public var swarmID: String
    public var index: Int
    public var status: String
    public var exitCode: Int?
    public var vmID: String?
    public var commitID: String?

    enum CodingKeys: String, CodingKey {
        case swarmID = "swarm_id", index = "idx", status, exitCode = "exit_code", vmID = "vm_id", commitID = "commit_id"
    }
}

/// A bridge process, named by PID and start time (PIDs get reused).
public struct Owner: Sendable, Equatable {
    public var pid: Int32
    public var start: UInt64

    /// This process.
    public static var current: Owner {
        let pid = getpid()
        return Owner(pid: pid, start: HostFS.processStartTime(pid) ?? 0)
    }

    /// Whether that process is still running.
    public var isAlive: Bool {
        HostFS.processStartTime(pid) == start
    }
}
