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
    public var createdAt: Date

    enum CodingKeys: String, CodingKey {
        case vmID = "vm_id", provider, parentCommit = "parent_commit", session, swarmID = "swarm_id"
        case label, state, ownerPID = "owner_pid", createdAt = "created_at"
    }

    public init(vmID: String, provider: String, parentCommit: String? = nil, session: String? = nil,
                swarmID: String? = nil, label: String? = nil, state: String = "running",
                ownerPID: Int? = nil, createdAt: Date = Date()) {
        self.vmID = vmID
        self.provider = provider
        self.parentCommit = parentCommit
        self.session = session
        self.swarmID = swarmID
        self.label = label
        self.state = state
        self.ownerPID = ownerPID
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
