import MCP

/// Small builders for the JSON Schemas of tool inputs and outputs.
enum Schema {
    /// An object schema; `additional` false rejects unknown members.
    static func object(_ properties: [String: Value], required: [String] = [], additional: Bool = false, description: String? = nil) -> Value {
        .compact([
            "type": "object",
            "properties": .object(properties),
            "required": required.isEmpty ? nil : .array(required.map { .string($0) }),
            "additionalProperties": .bool(additional),
            "description": description.map { .string($0) },
        ])
    }

    static func string(_ description: String, minLength: Int? = nil) -> Value {
        .compact(["type": "string", "description": .string(description), "minLength": minLength.map { .int($0) }])
    }

    static func integer(_ description: String, minimum: Int? = nil, maximum: Int? = nil) -> Value {
        .compact([
            "type": "integer", "description": .string(description),
            "minimum": minimum.map { .int($0) }, "maximum": maximum.map { .int($0) },
        ])
    }

    static func number(_ description: String, minimum: Double? = nil, maximum: Double? = nil) -> Value {
        .compact([
            "type": "number", "description": .string(description),
            "minimum": minimum.map { .double($0) }, "maximum": maximum.map { .double($0) },
        ])
    }

    static func boolean(_ description: String) -> Value {
        .object(["type": "boolean", "description": .string(description)])
    }

    static func array(_ items: Value, _ description: String, minItems: Int? = nil) -> Value {
        .compact(["type": "array", "items": items, "description": .string(description), "minItems": minItems.map { .int($0) }])
    }

    static func stringMap(_ description: String) -> Value {
        .object(["type": "object", "additionalProperties": ["type": "string"], "description": .string(description)])
    }

    static func nullable(_ type: String, _ description: String) -> Value {
        .object(["type": .array([.string(type), "null"]), "description": .string(description)])
    }

    static func oneOf(_ options: [Value], _ description: String) -> Value {
        .object(["oneOf": .array(options), "description": .string(description)])
    }
}
