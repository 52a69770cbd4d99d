import Foundation
import GRDB

/// A registry failure.
public struct RegistryError: Error, Sendable, CustomStringConvertible {
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
        do {
            pool = try DatabasePool(path: path, configuration: config)
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

    /// Forgets a VM (after the backend confirmed its deletion).
    public func removeVM(_ id: String) throws {
        _ = try write { db in try VMRecord.deleteOne(db, key: id) }
    }

    // MARK: - Commits

    /// Records a commit. Throws `RegistryError` when its label is taken.
    public func saveCommit(_ commit: CommitRecord) throws {
        try write { db in
            if let label = commit.label,
               let other = try CommitRecord.filter(Column("label") == label).fetchOne(db),
               other.commitID != commit.commitID {
                throw RegistryError(message: "label \"\(label)\" already names commit \(other.commitID)")
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
