import Testing
@testable import VersSwarm

@Suite("Bounded output capture")
struct OutputCaptureTests {
    @Test("output within the limit is kept whole")
    func small() {
        var capture = OutputCapture(limit: 100)
        capture.append(Array("hello".utf8))
        #expect(capture.text == "hello")
        #expect(!capture.truncated)
    }

    @Test("long output keeps its head and tail and marks the elided middle")
    func headAndTail() {
        var capture = OutputCapture(limit: 10)
        for chunk in ["abcde", "XXXXXXXXXX", "XXXX", "vwxyz"] { capture.append(Array(chunk.utf8)) }
        #expect(capture.truncated)
        #expect(capture.total == 24)
        #expect(capture.text.hasPrefix("abcde"))
        #expect(capture.text.hasSuffix("vwxyz"))
        #expect(capture.text.contains("elided 14 bytes"))
    }

    @Test("the tail follows many small appends", arguments: [1, 3, 7])
    func ring(_ step: Int) {
        var capture = OutputCapture(limit: 8)
        let input = Array("0123456789abcdefghijklmnopqrstuvwxyz".utf8)
        var i = 0
        while i < input.count { capture.append(input[i..<min(i + step, input.count)]); i += step }
        #expect(capture.text.hasPrefix("0123"))
        #expect(capture.text.hasSuffix("wxyz"))
    }
}
