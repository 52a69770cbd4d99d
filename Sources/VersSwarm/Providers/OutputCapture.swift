/// Bounded capture of one output stream: the first half of the budget and
/// the last half are kept, the middle is counted and elided.
public struct OutputCapture: Sendable {
    private let headLimit: Int
    private let tailLimit: Int
    private var head: [UInt8] = []
    private var tail: [UInt8] = []
    private var tailStart = 0
    /// Every byte seen.
    public private(set) var total = 0

    public init(limit: Int) {
        headLimit = max(limit / 2, 0)
        tailLimit = max(limit - limit / 2, 0)
        head.reserveCapacity(min(headLimit, 1 << 16))
    }

    /// True when bytes were elided.
    public var truncated: Bool { total > headLimit + tailLimit }

    /// Adds bytes.
    public mutating func append<C: Collection>(_ bytes: C) where C.Element == UInt8 {
        total += bytes.count
        var rest = bytes[...]
        if head.count < headLimit {
            let take = min(headLimit - head.count, rest.count)
            head.append(contentsOf: rest.prefix(take))
            rest = rest.dropFirst(take)
        }
        guard !rest.isEmpty, tailLimit > 0 else { return }
        if rest.count >= tailLimit {
            tail = Array(rest.suffix(tailLimit))
            tailStart = 0
            return
        }
        for byte in rest {
            if tail.count < tailLimit {
                tail.append(byte)
            } else {
                tail[tailStart] = byte
                tailStart = (tailStart + 1) % tailLimit
            }
        }
    }

    /// The kept bytes in order, with a marker where the middle was elided.
    public var text: String {
        let ordered = Array(tail[tailStart...] + tail[..<tailStart])
        if !truncated {
            return String(decoding: head + ordered, as: UTF8.self)
        }
        let elided = total - head.count - ordered.count
        return String(decoding: head, as: UTF8.self)
            + "\n[... vers-swarm elided \(elided) bytes ...]\n"
            + String(decoding: ordered, as: UTF8.self)
    }
}
