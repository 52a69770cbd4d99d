import Foundation
import Logging
import Synchronization

/// Logs one line per record to stderr (never stdout: that carries the
/// protocol), at a level shared process-wide so logging/setLevel reaches
/// every logger.
public struct StderrLogHandler: LogHandler {
    private static let level = Mutex<Logger.Level>(.info)
    private let label: String
    public var metadata: Logger.Metadata = [:]

    public init(label: String) {
        self.label = label
    }

    /// Sets the level of every logger in the process.
    public static func setLevel(_ level: Logger.Level) {
        Self.level.withLock { $0 = level }
    }

    public var logLevel: Logger.Level {
        get { Self.level.withLock { $0 } }
        set { Self.setLevel(newValue) }
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var merged = metadata
        if let extra = event.metadata { merged.merge(extra) { _, new in new } }
        let meta = merged.isEmpty ? "" : " " + merged.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
        let line = "\(Date().iso8601) \(event.level) \(label): \(event.message)\(meta)\n"
        FileHandle.standardError.write(Data(line.utf8))
    }
}
