import ExecProtocol
import Harness
import Testing

private func value(_ json: String) throws -> JudgeValue { JudgeValue(json: try JSONParser.parse(json)) }

private func equal(_ a: String, _ e: String, _ options: Execd_V1_Comparison = .init()) throws -> Bool {
    ValueComparator(options).difference(actual: try value(a), expected: try value(e)) == nil
}

private func options(_ edit: (inout Execd_V1_Comparison) -> Void) -> Execd_V1_Comparison {
    var c = Execd_V1_Comparison()
    edit(&c)
    return c
}

struct ValueComparatorTests {
    @Test func numbersCompareNumerically() throws {
        #expect(try equal("1", "1.0"))
        #expect(try equal("1.0", "1"))
        #expect(try equal("-0", "0"))
        #expect(try equal(#"{"$float":"-0"}"#, "0"))
        #expect(try equal("1e2", "100"))
        #expect(try !equal("1", "1.5"))
        #expect(try !equal("true", "1"))
        #expect(try !equal("0", "false"))
        #expect(try !equal("0.30000000000000004", "0.3"))
    }

    @Test func bigIntegersCompareExactly() throws {
        #expect(try equal(#"{"$int":"354224848179261915075"}"#, "354224848179261915075"))
        #expect(try !equal(#"{"$int":"354224848179261915075"}"#, "354224848179261915076"))
        #expect(try equal("9007199254740993", #"{"$int":"9007199254740993"}"#))
        #expect(try !equal("9007199254740993", "9007199254740992"))
        // an integral float equals the integer it is exactly
        #expect(try equal("1e20", #"{"$int":"100000000000000000000"}"#))
        #expect(try !equal("1e20", #"{"$int":"100000000000000000001"}"#))
    }

    @Test func specialFloats() throws {
        #expect(try equal(#"{"$float":"nan"}"#, #"{"$float":"nan"}"#))
        #expect(try !equal(#"{"$float":"nan"}"#, "0"))
        #expect(try equal(#"{"$float":"inf"}"#, #"{"$float":"inf"}"#))
        #expect(try !equal(#"{"$float":"inf"}"#, #"{"$float":"-inf"}"#))
        #expect(try !equal(#"{"$float":"inf"}"#, "1e308", options { $0.absTol = 1e300 }))
    }

    @Test func tolerances() throws {
        #expect(try equal("0.30000000000000004", "0.3", options { $0.absTol = 1e-9 }))
        #expect(try equal("1000001", "1000000", options { $0.relTol = 1e-5 }))
        #expect(try !equal("1000100", "1000000", options { $0.relTol = 1e-5 }))
        #expect(try equal("[1.0000001, [2.0]]", "[1, [2.0000001]]", options { $0.absTol = 1e-6 }))
        #expect(try !equal("1.1", "1", options { $0.absTol = 1e-6; $0.relTol = 1e-6 }))
    }

    @Test func sequencesTuplesSets() throws {
        #expect(try equal(#"{"$tuple":[1,2]}"#, "[1,2]"))
        #expect(try !equal("[2,1]", "[1,2]"))
        #expect(try equal("[2,1]", "[1,2]", options { $0.unordered = true }))
        #expect(try equal("[1,1,2]", "[1,2,1]", options { $0.unordered = true }))
        #expect(try !equal("[1,2,2]", "[1,1,2]", options { $0.unordered = true }))
        #expect(try !equal("[[2,1]]", "[[1,2]]", options { $0.unordered = true }))
        #expect(try equal("[[2,1],[3]]", "[[3],[1,2]]", options { $0.unorderedNested = true }))
        #expect(try equal(#"{"$set":[3,1,2]}"#, #"{"$set":[1,2,3]}"#))
        #expect(try equal(#"{"$set":[1]}"#, #"{"$frozenset":[1]}"#))
        #expect(try !equal(#"{"$set":[1,2]}"#, "[1,2]"))
        #expect(try equal(#"{"$set":[1,2]}"#, "[2,1]", options { $0.unordered = true }))
        #expect(try equal("[1.0000001, 2]", "[2, 1]", options { $0.unordered = true; $0.absTol = 1e-6 }))
    }

    @Test func mapsObjectsNullUndefinedBytes() throws {
        #expect(try equal(#"{"b":1,"a":2}"#, #"{"a":2,"b":1}"#))
        #expect(try !equal(#"{"a":1}"#, #"{"a":1,"b":2}"#))
        #expect(try equal(#"{"$map":[[2,"b"],[1,"a"]]}"#, #"{"$map":[[1,"a"],[2,"b"]]}"#))
        #expect(try equal(#"{"$map":[["a",1]]}"#, #"{"a":1}"#))
        #expect(try equal(#"{"$undefined":true}"#, "null"))
        #expect(try !equal("null", "0"))
        #expect(try equal(#"{"$bytes":"aGk="}"#, #"{"$bytes":"aGk="}"#))
        #expect(try !equal(#"{"$bytes":"aGk="}"#, #""hi""#))
        #expect(try equal(#"{"$dict":{"$set":1}}"#, #"{"$dict":{"$set":1}}"#))
        #expect(try !equal(#"{"$dict":{"$set":[1]}}"#, #"{"$set":[1]}"#))
        #expect(try !equal(#"{"$repr":"<object>"}"#, #""<object>""#))
    }

    @Test func caseInsensitiveStrings() throws {
        #expect(try !equal(#""Yes""#, #""yes""#))
        #expect(try equal(#""Yes""#, #""yes""#, options { $0.caseInsensitive = true }))
    }

    @Test func differenceNamesThePath() throws {
        let d = ValueComparator().difference(actual: try value("[[1,2],[3,5]]"), expected: try value("[[1,2],[3,4]]"))
        #expect(d == "at [1][1]: expected 4, got 5")
    }
}

struct TextComparatorTests {
    private func same(_ a: String, _ e: String, _ o: Execd_V1_Comparison = .init()) -> Bool {
        TextComparator(o).difference(actual: a, expected: e) == nil
    }

    @Test func defaultsIgnoreTrailingWhitespaceAndCRLF() {
        #expect(same("3\n", "3"))
        #expect(same("3", "3\n\n"))
        #expect(same("1 2  \r\n3\t\r\n", "1 2\n3\n"))
        #expect(!same("1  2\n", "1 2\n"))
        #expect(!same("3\n4\n", "3\n"))
        #expect(same("", "\n"))
    }

    @Test func strictOptions() {
        #expect(!same("3", "3\n", options { $0.strictFinalNewline = true }))
        #expect(!same("3 \n", "3\n", options { $0.strictTrailingSpaces = true }))
        #expect(!same("3\r\n", "3\n", options { $0.strictLineEndings = true }))
        #expect(same("3\r\n", "3\r\n", options { $0.strictLineEndings = true }))
    }

    @Test func caseInsensitiveAndTokens() {
        #expect(!same("YES\n", "yes\n"))
        #expect(same("YES\n", "yes\n", options { $0.caseInsensitive = true }))
        #expect(same("1   2\n\n3", "1 2 3", options { $0.tokens = true }))
        #expect(same("3.14159", "3.1416", options { $0.absTol = 1e-4 }))
        #expect(!same("3.15", "3.1416", options { $0.absTol = 1e-4 }))
    }

    @Test func differenceNamesTheLine() {
        #expect(TextComparator().difference(actual: "a\nb\n", expected: "a\nc\n") == #"line 2 differs: expected "c", got "b""#)
        #expect(TextComparator().difference(actual: "a\n", expected: "a\nc\n") == #"output ended early: expected line 2 "c""#)
    }
}
