import Foundation

/// Strict base64 (RFC 4648 §4): only the alphabet, a length that is a
/// multiple of 4, and `=` padding only at the very end.
enum Base64 {
    static func strictDecode(_ text: String) -> Data? {
        let bytes = Array(text.utf8)
        guard bytes.count % 4 == 0 else { return nil }
        let padding = bytes.reversed().prefix { $0 == UInt8(ascii: "=") }.count
        guard padding <= 2 else { return nil }
        for byte in bytes.dropLast(padding) {
            switch byte {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"),
                 UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "+"), UInt8(ascii: "/"): continue
            default: return nil
            }
        }
        return Data(base64Encoded: text)
    }
}
