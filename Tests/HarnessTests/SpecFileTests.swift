import ExecProtocol
import Foundation
import Harness
import Testing

struct SpecFileTests {
    private func parse(_ json: String, _ lang: Execd_V1_Language = .python) throws -> Execd_V1_JudgeRequest {
        try TestSpecFile.request(spec: Data(json.utf8), submission: Data("x".utf8), language: lang)
    }

    private func error(_ json: String) -> String? {
        do {
            _ = try parse(json)
            return nil
        } catch {
            return (error as? TestSpecFile.Invalid)?.message ?? "\(error)"
        }
    }

    @Test func parsesFunctionSpec() throws {
        let r = try parse(
            #"{"kind":"function","entry":"f","compare":{"abs_tol":0.5,"unordered":true},"fail_fast":true,"#
                + #""tests":[{"name":"a","args":[1,{"$tuple":[2]}],"expected":12345678901234567890,"hidden":true,"#
                + #""weight":2.5,"time_limit_ms":500}]}"#)
        #expect(r.kind == .function && r.entry == "f" && r.failFast)
        #expect(r.compare.absTol == 0.5 && r.compare.unordered)
        #expect(r.tests[0].argsJson == #"[1,{"$tuple":[2]}]"#)
        #expect(r.tests[0].expectedJson == "12345678901234567890")
        #expect(r.tests[0].hidden && r.tests[0].weight == 2.5 && r.tests[0].timeLimitMs == 500)
    }

    @Test func designCallsBecomeLeetCodeArgs() throws {
        let r = try parse(#"{"entry":"C","tests":[{"calls":[["C",2],["get",1]],"expected":[null,-1]}]}"#)
        #expect(r.tests[0].argsJson == #"[["C","get"],[[2],[1]]]"#)
    }

    @Test func stdioAndScript() throws {
        let s = try parse(#"{"kind":"stdio","compare":"tokens","tests":[{"stdin":"1\n","expected_stdout":"2\n"}]}"#)
        #expect(s.tests[0].stdin == Data("1\n".utf8) && s.tests[0].expectedStdout == Data("2\n".utf8) && s.compare.tokens)
        let c = try parse(#"{"kind":"script","entry":"f","test_code":"def check(c): pass"}"#)
        #expect(c.tests.isEmpty && c.testCode.contains("check"))
        let m = try parse(#"{"kind":"script","tests":["assert f(1) == 2", {"code":"assert f(2) == 3"}]}"#)
        #expect(m.tests.map(\.code) == ["assert f(1) == 2", "assert f(2) == 3"])
    }

    @Test func clearErrors() {
        #expect(error("{") == "the test file is not valid JSON: line 1, column 2: expected a string key")
        #expect(error("[]") == "the test file must be a JSON object")
        #expect(error(#"{"kind":"fun","entry":"f","tests":[]}"#)?.contains("kind must be") == true)
        #expect(error(#"{"entry":"f","tests":[{"args":1,"expected":1}]}"#)
            == "tests[0].args must be an array of arguments, got a number")
        #expect(error(#"{"entry":"f","tests":[{"args":[1]}]}"#) == #"tests[0] has no "expected" value"#)
        #expect(error(#"{"tests":[{"args":[1],"expected":1}]}"#) == #"function tests need "entry""#)
        #expect(error(#"{"entry":"f","tests":[{"args":[],"expected":1,"hidden":"yes"}]}"#)
            == "tests[0].hidden must be true or false, got a string")
        #expect(error(#"{"entry":"f","compare":"fuzzy","tests":[{"args":[],"expected":1}]}"#)?.contains("fuzzy") == true)
        #expect(error(#"{"kind":"stdio","tests":[{"stdin":"1"}]}"#) == #"tests[0] has no "expected_stdout""#)
    }

    @Test func languages() {
        #expect(TestSpecFile.language("py") == .python && TestSpecFile.language("JS") == .javascript)
        #expect(TestSpecFile.language("ruby") == nil)
    }
}

struct ReportTests {
    @Test func jsonHasTheDocumentedFields() throws {
        var r = Execd_V1_JudgeResult()
        r.verdict = .wrongAnswer
        r.passed = 1
        r.total = 2
        r.score = 1
        r.maxScore = 2
        var a = Execd_V1_TestResult()
        a.name = "visible"
        a.status = .wrongAnswer
        a.actualJson = "[1]"
        a.expectedJson = "[2]"
        a.stdout = Data("hi\n".utf8)
        var h = Execd_V1_TestResult()
        h.name = "secret"
        h.status = .accepted
        h.hidden = true
        r.tests = [a, h]
        let doc = try JSONParser.parse(JudgeReport.json(r))
        #expect(doc["verdict"] == .string("wrong_answer") && doc["passed"] == .number("1"))
        #expect(doc["total"] == .number("2") && doc["score"] == .number("1") && doc["max_score"] == .number("2"))
        let tests = doc["tests"]?.arrayValue ?? []
        #expect(tests[0]["actual"] == .array([.number("1")]) && tests[0]["expected"] == .array([.number("2")]))
        #expect(tests[0]["stdout"] == .string("hi\n") && tests[0]["time_ms"] != nil)
        #expect(tests[1]["status"] == .string("accepted") && tests[1]["actual"] == nil && tests[1]["stdout"] == nil)
        #expect(JudgeReport.text(r).hasPrefix("WRONG_ANSWER  1/2 passed"))
    }
}
