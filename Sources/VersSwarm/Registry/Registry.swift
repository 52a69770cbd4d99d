import Foundation
import GRDB

/// A registry failure; `kind` is set when the caller asked for something
/// that conflicts with what is recorded (a label or session already taken).
public struct RegistryError: Error, Sendable, CustomStringConvertible {
    public var kind: ToolError.Kind = .backend
    public var message: String
    public var description: String { message }
}

/// The SQLite registry (WAL, busy timeout, migrations) shared by every bridge
/// process on this machine: which VMs exist, which commits and labels.
public final class Registry: Sendable {
    private let pool: DatabasePool
    /// The database file.
    public let path: String

    /// Opens (creating and migrating) the registry at `path`.
    public init(path: String) throws {
        self.path = path
        var config = Configuration()
        config.busyMode = .timeout(30)
        config.label = "vers-swarm.registry"
        config.prepareDatabase { db in
            // WAL with NORMAL sync: durable across crashes of any process, one fsync per checkpoint.
            try db.execute(sql: "PRAGMA synchronous = NORMAL")
        }
        do {
            pool = try DatabasePool(path: path, configuration: config)
            // Bridges start concurrently: one process at a time checks and applies migrations.
            let lock = open(path + ".migrate.lock", O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
            defer { if lock >= 0 { close(lock) } }
            if lock >= 0 { while flock(lock, LOCK_EX) != 0 && errno == EINTR {} }
            try Self.migrator.migrate(pool)
        } catch {
            throw RegistryError(message: "cannot open the registry at \(path): \(error)")
        }
    }

    static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1: vms and commits") { db in
            try db.create(table: "vms") { t in
                t.primaryKey("vm_id", .text)
                t.column("provider", .text).notNull()
                t.column("parent_commit", .text)
                t.column("session", .text)
                t.column("swarm_id", .text)
                t.column("label", .text)
                t.column("state", .text).notNull()
                t.column("owner_pid", .integer)
                t.column("created_at", .datetime).notNull()
            }
            try db.create(table: "commits") { t in
                t.primaryKey("commit_id", .text)
                t.column("provider", .text).notNull()
                t.column("label", .text).unique()
                t.column("description", .text)
                t.column("vm_id", .text)
                t.column("parent_commit", .text)
                t.column("created_at", .datetime).notNull()
            }
        }
        migrator.registerMigration("v2: sessions, swarms, owners") { db in
            try db.alter(table: "vms") { t in
                t.add(column: "owner_start", .integer)
            }
            try db.create(table: "sessions") { t in
                t.primaryKey("name", .text)
                t.column("vm_id", .text).notNull().indexed()
                t.column("created_at", .datetime).notNull()
            }
            try db.create(table: "swarms") { t in
                t.primaryKey("swarm_id", .text)
                t.column("from_commit", .text).notNull()
                t.column("owner_pid", .integer).notNull()
                t.column("owner_start", .integer).notNull()
                t.column("state", .text).notNull()
                t.column("keep", .text).notNull()
                t.column("task_count", .integer).notNull()
                t.column("created_at", .datetime).notNull()
                t.column("finished_at", .datetime)
            }
            try db.create(table: "swarm_tasks") { t in
                t.column("swarm_id", .text).notNull().references("swarms", onDelete: .cascade)
                t.column("idx", .integer).notNull()
                t.column("status", .text).notNull()
                t.column("exit_code", .integer)
                t.column("vm_id", .text)
                t.column("commit_id", .text)
                t.primaryKey(["swarm_id", "idx"])
            }
            try db.create(index: "vms_swarm", on: "vms", columns: ["swarm_id"])
        }
        return migrator
    }

    private func write<T>(_ body: (Database) throws -> T) throws -> T {
        do { return try pool.write(body) } catch let error as RegistryError { throw error } catch {
            throw RegistryError(message: "registry write failed: \(error)")
        }
    }

    private func read<T>(_ body: (Database) throws -> T) throws -> T {
        do { return try pool.read(body) } catch {
            throw RegistryError(message: "registry read failed: \(error)")
        }
    }

    /// The SQLite library's version, as GRDB runs it.
    public func sqliteVersion() -> String {
        (try? pool.read { db in try String.fetchOne(db, sql: "SELECT sqlite_version()") }) ?? "unknown"
    }

    // MARK: - VMs

    /// Records a VM (insert or replace).
    public func saveVM(_ vm: VMRecord) throws {
        try write { db in try vm.save(db) }
    }

    /// The VM with this id, if recorded.
    public func vm(_ id: String) throws -> VMRecord? {
        try read { db in try VMRecord.fetchOne(db, key: id) }
    }

    /// Every recorded VM, oldest first.
    public func vms() throws -> [VMRecord] {
        try read { db in try VMRecord.order(Column("created_at"), Column("vm_id")).fetchAll(db) }
    }

    /// Forgets a VM (after the backend confirmed its deletion) and its session bindings.
    public func removeVM(_ id: String) throws {
        try write { db in
            _ = try VMRecord.deleteOne(db, key: id)
            _ = try SessionRecord.filter(Column("vm_id") == id).deleteAll(db)
        }
    }

    /// VMs of one swarm.
    public func vms(swarm: String) throws -> [VMRecord] {
        try read { db in try VMRecord.filter(Column("swarm_id") == swarm).fetchAll(db) }
    }

    // MARK: - Sessions

    /// Binds a session to a VM. A session bound to another VM, a VM bound to
    /// another session, or an unknown VM is refused.
    public func bindSession(_ name: String, to vmID: String) throws -> SessionRecord {
        try write { db in
            guard try VMRecord.fetchOne(db, key: vmID) != nil else {
                throw RegistryError(kind: .notFound, message: "VM \(vmID) not found: list_vms shows live VMs")
            }
            if let existing = try SessionRecord.fetchOne(db, key: name) {
                if existing.vmID == vmID { return existing }
                throw RegistryError(kind: .conflict, message: "session \"\(name)\" is already bound to VM \(existing.vmID): unbind_session it first")
            }
            if let other = try SessionRecord.filter(Column("vm_id") == vmID).fetchOne(db) {
                throw RegistryError(kind: .conflict, message: "VM \(vmID) is already bound to session \"\(other.name)\"")
            }
            let record = SessionRecord(name: name, vmID: vmID)
            try record.insert(db)
            try db.execute(sql: "UPDATE vms SET session = ? WHERE vm_id = ?", arguments: [name, vmID])
            return record
        }
    }

    /// Unbinds a session; returns the VM it was bound to, nil when it was not bound.
    public func unbindSession(_ name: String) throws -> String? {
        try write { db in
            guard let existing = try SessionRecord.fetchOne(db, key: name) else { return nil }
            _ = try existing.delete(db)
            try db.execute(sql: "UPDATE vms SET session = NULL WHERE vm_id = ? AND session = ?", arguments: [existing.vmID, name])
            return existing.vmID
        }
    }

    /// The binding of one session.
    public func session(_ name: String) throws -> SessionRecord? {
        try read { db in try SessionRecord.fetchOne(db, key: name) }
    }

    /// Every session, oldest first.
    public func sessions() throws -> [SessionRecord] {
        try read { db in try SessionRecord.order(Column("created_at"), Column("name")).fetchAll(db) }
    }

    // MARK: - Swarms

    /// Records or updates a swarm.
    public func saveSwarm(_ swarm: SwarmRecord) throws {
        try write { db in try swarm.save(db) }
    }

    /// One swarm.
    public func swarm(_ id: String) throws -> SwarmRecord? {
        try read { db in try SwarmRecord.fetchOne(db, key: id) }
    }

    /// Swarms still marked running.
    public func runningSwarms() throws -> [SwarmRecord] {
        try read { db in try SwarmRecord.filter(Column("state") == "running").fetchAll(db) }
    }

    /// Records a finished task.
    public func saveSwarmTask(_ task: SwarmTaskRecord) throws {
        try write { db in try task.save(db) }
    }

    /// The finished tasks of a swarm.
    public func swarmTasks(_ id: String) throws -> [SwarmTaskRecord] {
        try read { db in try SwarmTaskRecord.filter(Column("swarm_id") == id).order(Column("idx")).fetchAll(db) }
    }

    // MARK: - Commits

    /// Records a commit. Throws `RegistryError` when its label is taken.
    public func saveCommit(_ commit: CommitRecord) throws {
        try write { db in
            if let label = commit.label,
               let other = try CommitRecord.filter(Column("label") == label).fetchOne(db),
               other.commitID != commit.commitID {
                throw RegistryError(kind: .conflict, message: "label \"\(label)\" already names commit \(other.commitID)")
            }
            try commit.save(db)
        }
    }

    /// The commit with this id.
    public func commit(_ id: String) throws -> CommitRecord? {
        try read { db in try CommitRecord.fetchOne(db, key: id) }
    }

    /// The commit carrying this label.
    public func commit(label: String) throws -> CommitRecord? {
        try read { db in try CommitRecord.filter(Column("label") == label).fetchOne(db) }
    }

    /// Every commit, oldest first.
    public func commits() throws -> [CommitRecord] {
        try read { db in try CommitRecord.order(Column("created_at"), Column("commit_id")).fetchAll(db) }
    }
}
