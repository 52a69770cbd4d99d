import Foundation
import MCP

/// Decodes JSON into `MCP.Value` exactly as written: strings stay strings
/// (the SDK's own decoder turns `data:` URLs into binary values).
struct StrictValue: Decodable {
    let value: Value

    init(from decoder: Decoder) throws {
        let container = try decoder.singleValueContainer()
        if container.decodeNil() {
            value = .null
        } else if let bool = try? container.decode(Bool.self) {
            value = .bool(bool)
        } else if let int = try? container.decode(Int.self) {
            value = .int(int)
        } else if let double = try? container.decode(Double.self) {
            value = .double(double)
        } else if let string = try? container.decode(String.self) {
            value = .string(string)
        } else if let array = try? container.decode([StrictValue].self) {
            value = .array(array.map(\.value))
        } else {
            let object = try container.decode([String: StrictValue].self)
            value = .object(object.mapValues(\.value))
        }
    }
}

/// JSON text in and out of `MCP.Value`, one compact line per message.
public enum JSONCoding {
    /// Parses one JSON text; throws on anything that is not JSON.
    public static func parse(_ data: Data) throws -> Value {
        try JSONDecoder().decode(StrictValue.self, from: data).value
    }

    /// Parses a JSON string.
    public static func parse(_ text: String) throws -> Value {
        try parse(Data(text.utf8))
    }

    /// Encodes a value as one compact JSON line (no trailing newline).
    public static func encode(_ value: Value) -> Data {
        (try? encodeCodable(value)) ?? Data("null".utf8)
    }

    /// Encodes a value as a compact JSON string.
    public static func string(_ value: Value) -> String {
        String(decoding: encode(value), as: UTF8.self)
    }

    /// Converts any `Encodable` into a `Value`.
    public static func value<T: Encodable>(_ encodable: T) -> Value {
        let encoder = JSONEncoder()
        guard let data = try? encoder.encode(encodable), let value = try? parse(data) else { return .null }
        return value
    }
}

extension Value {
    /// A short description of the JSON type, for error messages.
    var jsonTypeName: String {
        switch self {
        case .null: "null"
        case .bool: "boolean"
        case .int: "integer"
        case .double: "number"
        case .string, .data: "string"
        case .array: "array"
        case .object: "object"
        }
    }

    /// Builds an object value dropping nil members.
    static func compact(_ pairs: KeyValuePairs<String, Value?>) -> Value {
        var result: [String: Value] = [:]
        for (key, value) in pairs { if let value { result[key] = value } }
        return .object(result)
    }
}

extension JSONCoding {
    /// Encodes a Codable value as compact JSON bytes: sorted keys, unescaped
    /// slashes, ISO 8601 dates (protocol lines and the files the backends keep).
    static func encodeCodable<T: Encodable>(_ value: T) throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        encoder.dateEncodingStrategy = .iso8601
        return try encoder.encode(value)
    }
}

extension JSONCoding {
    /// A decoder matching `encodeCodable`.
    static var decoder: JSONDecoder {
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .iso8601
        return decoder
    }
}

extension Value {
    /// The member `key` of an object value.
    public subscript(key: String) -> Value? { objectValue?[key] }
}
