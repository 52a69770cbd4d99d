import Foundation
import Testing
@testable import VersSwarm

@Suite("strict base64")
struct Base64Tests {
    @Test("valid base64 decodes", arguments: ["", "YQ==", "YWI=", "YWJj", "AAECAwQF"])
    func valid(_ text: String) {
        #expect(Base64.strictDecode(text) == Data(base64Encoded: text))
    }

    @Test("anything else is refused", arguments: ["YQ=x", "YQ=a", "YWJj=", "a", "!!!!", "=YQ=", "YQ\n==", "Y===", "YWJj YWJj"])
    func invalid(_ text: String) {
        #expect(Base64.strictDecode(text) == nil)
    }
}
