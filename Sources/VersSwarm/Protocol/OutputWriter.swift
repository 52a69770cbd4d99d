import Foundation
import MCP
import Synchronization

/// The single writer of protocol frames: each message is one JSON line,
/// written whole under a lock so concurrent responses never interleave.
public final class OutputWriter: Sendable {
    private let fd: Int32
    private let lock = Mutex(())

    public init(fd: Int32 = 1) {
        self.fd = fd
    }

    /// Writes one message followed by a newline.
    public func send(_ message: Value) {
        var data = JSONCoding.encode(message)
        data.append(0x0A)
        lock.withLock { _ in
            data.withUnsafeBytes { raw in
                guard let base = raw.baseAddress else { return }
                var offset = 0
                while offset < raw.count {
                    let n = write(fd, base + offset, raw.count - offset)
                    if n < 0 {
                        if errno == EINTR { continue }
                        return
                    }
                    offset += n
                }
            }
        }
    }
}
