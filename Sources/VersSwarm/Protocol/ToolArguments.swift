import MCP

/// A tool's arguments with typed, path-aware accessors: every mistake
/// becomes a -32602 error naming the offending field.
public struct ToolArguments: Sendable {
    /// The raw members.
    public let values: [String: Value]
    /// The JSON path of this object ("arguments" under tools/call, "" for a plain call).
    public let path: String

    public init(_ value: Value?, path: String) throws(RPCError) {
        self.path = path
        switch value {
        case nil, .null?: values = [:]
        case .object(let object)?: values = object
        case let other?: throw RPCError.invalidParams(path, "expected an object, got \(other.jsonTypeName)")
        }
    }

    /// The path of member `key`.
    public func path(of key: String) -> String { path.isEmpty ? key : "\(path).\(key)" }

    /// Whether the member is present and not null.
    public func has(_ key: String) -> Bool {
        if let value = values[key], value != .null { return true }
        return false
    }

    /// Rejects members the tool does not know.
    public func allowOnly(_ keys: Set<String>) throws(RPCError) {
        if let extra = values.keys.sorted().first(where: { !keys.contains($0) }) {
            throw RPCError.invalidParams(path(of: extra), "unknown argument; expected one of \(keys.sorted().joined(separator: ", "))")
        }
    }

    func fail(_ key: String, _ detail: String) -> RPCError { .invalidParams(path(of: key), detail) }

    // MARK: - Strings

    /// An optional string member.
    public func string(_ key: String) throws(RPCError) -> String? {
        switch values[key] {
        case nil, .null?: return nil
        case .string(let s)?: return s
        case let other?: throw fail(key, "expected a string, got \(other.jsonTypeName)")
        }
    }

    /// A required, non-empty string member.
    public func requiredString(_ key: String) throws(RPCError) -> String {
        guard let s = try string(key) else { throw fail(key, "required") }
        guard !s.isEmpty else { throw fail(key, "must not be empty") }
        return s
    }

    /// An optional array of strings.
    public func strings(_ key: String) throws(RPCError) -> [String]? {
        switch values[key] {
        case nil, .null?: return nil
        case .array(let items)?:
            return try items.enumerated().map { (i, item) throws(RPCError) -> String in
                guard case .string(let s) = item else {
                    throw RPCError.invalidParams("\(path(of: key))[\(i)]", "expected a string, got \(item.jsonTypeName)")
                }
                return s
            }
        case let other?: throw fail(key, "expected an array of strings, got \(other.jsonTypeName)")
        }
    }

    /// An optional object whose values are all strings.
    public func stringMap(_ key: String) throws(RPCError) -> [String: String]? {
        switch values[key] {
        case nil, .null?: return nil
        case .object(let object)?:
            var result: [String: String] = [:]
            for (k, v) in object {
                guard case .string(let s) = v else {
                    throw RPCError.invalidParams("\(path(of: key)).\(k)", "expected a string, got \(v.jsonTypeName)")
                }
                result[k] = s
            }
            return result
        case let other?: throw fail(key, "expected an object of strings, got \(other.jsonTypeName)")
        }
    }

    // MARK: - Numbers and flags

    /// An optional integer within `range`.
    public func int(_ key: String, in range: ClosedRange<Int>) throws(RPCError) -> Int? {
        let n: Int
        switch values[key] {
        case nil, .null?: return nil
        case .int(let i)?: n = i
        case .double(let d)? where d.rounded() == d && abs(d) < 1e15: n = Int(d)
        case let other?: throw fail(key, "expected an integer, got \(other.jsonTypeName)")
        }
        guard range.contains(n) else {
            throw fail(key, "must be between \(range.lowerBound) and \(range.upperBound), got \(n)")
        }
        return n
    }

    /// An optional number within `range`.
    public func number(_ key: String, in range: ClosedRange<Double>) throws(RPCError) -> Double? {
        let d: Double
        switch values[key] {
        case nil, .null?: return nil
        case .int(let i)?: d = Double(i)
        case .double(let x)?: d = x
        case let other?: throw fail(key, "expected a number, got \(other.jsonTypeName)")
        }
        guard range.contains(d) else {
            throw fail(key, "must be between \(range.lowerBound) and \(range.upperBound), got \(d)")
        }
        return d
    }

    /// An optional boolean.
    public func bool(_ key: String) throws(RPCError) -> Bool? {
        switch values[key] {
        case nil, .null?: return nil
        case .bool(let b)?: return b
        case let other?: throw fail(key, "expected a boolean, got \(other.jsonTypeName)")
        }
    }
}
