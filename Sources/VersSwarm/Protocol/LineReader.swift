import Foundation

/// Reads newline-delimited messages from a file descriptor on a dedicated
/// thread (blocking reads never touch the cooperative pool) and hands them
/// over as an async stream that finishes at end of file.
final class LineReader: Sendable {
    /// The largest line accepted; longer ones are reported, then skipped.
    static let maxLineBytes = 64 << 20

    /// One item of input.
    enum Item: Sendable {
        case line(Data)
        case tooLong(Int)
    }

    let lines: AsyncStream<Item>
    private let continuation: AsyncStream<Item>.Continuation
    private let fd: Int32

    init(fd: Int32 = 0) {
        self.fd = fd
        (lines, continuation) = AsyncStream.makeStream(of: Item.self, bufferingPolicy: .unbounded)
    }

    /// Starts the reader thread.
    func start() {
        let thread = Thread { [self] in self.readLoop() }
        thread.name = "vers-swarm.stdin"
        thread.start()
    }

    private func readLoop() {
        var pending = [UInt8]()
        var skipping = false
        var skipped = 0
        var buffer = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { break }
            var start = 0
            for i in 0..<n where buffer[i] == UInt8(ascii: "\n") {
                if skipping {
                    continuation.yield(.tooLong(skipped + i - start))
                    skipping = false
                    skipped = 0
                } else {
                    pending.append(contentsOf: buffer[start..<i])
                    emit(&pending)
                }
                start = i + 1
            }
            if start < n {
                if skipping {
                    skipped += n - start
                } else {
                    pending.append(contentsOf: buffer[start..<n])
                    if pending.count > Self.maxLineBytes {
                        skipping = true
                        skipped = pending.count
                        pending.removeAll()
                    }
                }
            }
        }
        if skipping { continuation.yield(.tooLong(skipped)) }
        if !pending.isEmpty { emit(&pending) }
        continuation.finish()
    }

    private func emit(_ pending: inout [UInt8]) {
        if pending.last == UInt8(ascii: "\r") { pending.removeLast() }
        let blank = pending.allSatisfy { $0 == 0x20 || $0 == 0x09 }
        if !blank { continuation.yield(.line(Data(pending))) }
        pending.removeAll(keepingCapacity: true)
    }
}
