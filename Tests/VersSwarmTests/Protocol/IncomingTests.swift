import Foundation
import MCP
import Testing
@testable import VersSwarm

@Suite("JSON-RPC message classification")
struct IncomingTests {
    private func classify(_ line: String) -> Incoming { Incoming(line: Data(line.utf8)) }

    @Test("malformed JSON is a parse error with a null id")
    func malformed() {
        guard case .invalid(let id, let error) = classify("{\"jsonrpc\": \"2.0\", ") else { Issue.record("not invalid"); return }
        #expect(id == .null)
        #expect(error.code == -32700)
    }

    @Test("JSON that is not a request object is an invalid request", arguments: ["42", "\"x\"", "[]", "[1,2]", "null", "true"])
    func notAnObject(_ line: String) {
        guard case .invalid(let id, let error) = classify(line) else { Issue.record("not invalid"); return }
        #expect(id == .null)
        #expect(error.code == -32600)
    }

    @Test("a request without jsonrpc 2.0 keeps its id in the error")
    func wrongVersion() {
        guard case .invalid(let id, let error) = classify(#"{"jsonrpc":"1.0","id":7,"method":"ping"}"#) else { Issue.record("not invalid"); return }
        #expect(id == .int(7))
        #expect(error.code == -32600)
    }

    @Test("string and numeric ids are kept exactly", arguments: [#""abc""#, "0", "-3", #""""#])
    func ids(_ raw: String) throws {
        guard case .request(let id, let method, _) = classify(#"{"jsonrpc":"2.0","id":\#(raw),"method":"ping"}"#) else {
            Issue.record("not a request"); return
        }
        #expect(JSONCoding.string(id) == raw)
        #expect(method == "ping")
    }

    @Test("a message without id is a notification")
    func notification() {
        guard case .notification(let method, _) = classify(#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#) else {
            Issue.record("not a notification"); return
        }
        #expect(method == "notifications/initialized")
    }

    @Test("bad ids, methods and params are invalid requests", arguments: [
        #"{"jsonrpc":"2.0","id":{},"method":"ping"}"#,
        #"{"jsonrpc":"2.0","id":null,"method":"ping"}"#,
        #"{"jsonrpc":"2.0","id":1,"method":3}"#,
        #"{"jsonrpc":"2.0","id":1}"#,
        #"{"jsonrpc":"2.0","id":1,"method":"ping","params":"x"}"#,
    ])
    func invalid(_ line: String) {
        guard case .invalid(_, let error) = classify(line) else { Issue.record("accepted \(line)"); return }
        #expect(error.code == -32600)
    }

    @Test("strings that look like data URLs stay strings")
    func dataURLStaysString() throws {
        let value = try JSONCoding.parse(#"{"s":"data:text/plain;base64,aGk="}"#)
        #expect(value["s"] == .string("data:text/plain;base64,aGk="))
    }
}

@Suite("Tool argument decoding")
struct ToolArgumentsTests {
    @Test("a wrong type names the field's path")
    func wrongType() throws {
        let args = try ToolArguments(try JSONCoding.parse(#"{"count":"x"}"#), path: "arguments")
        #expect(throws: RPCError.self) { _ = try args.int("count", in: 1...255) }
        do { _ = try args.int("count", in: 1...255) } catch {
            #expect(error.code == -32602)
            #expect(error.data?["path"] == .string("arguments.count"))
        }
    }

    @Test("out-of-range numbers are rejected", arguments: [0, 256, -1, 10_000])
    func range(_ n: Int) throws {
        let args = try ToolArguments(.object(["count": .int(n)]), path: "")
        #expect(throws: RPCError.self) { _ = try args.int("count", in: 1...255) }
    }

    @Test("unknown members are rejected by name")
    func unknown() throws {
        let args = try ToolArguments(.object(["vm_id": "a", "bogus": 1]), path: "arguments")
        do { try args.allowOnly(["vm_id"]); Issue.record("accepted") } catch {
            #expect(error.data?["path"] == .string("arguments.bogus"))
        }
    }

    @Test("exec rejects an empty command, a relative cwd and a negative timeout", arguments: [
        #"{"command":""}"#, #"{"command":"   "}"#, #"{"command":[]}"#, #"{"command":[""]}"#,
        #"{"command":"true","cwd":"tmp"}"#, #"{"command":"true","timeout_s":-1}"#,
        #"{"command":"true","env":{"A=B":"x"}}"#, #"{"command":5}"#,
    ])
    func execRejects(_ json: String) throws {
        let args = try ToolArguments(try JSONCoding.parse(json), path: "")
        #expect(throws: RPCError.self) { _ = try ExecTool.request(from: args) }
    }

    @Test("a string command runs under sh -c; an array runs as argv")
    func execCommand() throws {
        let shell = try ExecTool.request(from: ToolArguments(.object(["command": "echo hi"]), path: ""))
        #expect(shell.argv == ["/bin/sh", "-c", "echo hi"])
        let argv = try ExecTool.request(from: ToolArguments(.object(["command": ["ls", "-l"]]), path: ""))
        #expect(argv.argv == ["ls", "-l"])
    }
}
