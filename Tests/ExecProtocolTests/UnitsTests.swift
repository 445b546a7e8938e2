import ExecProtocol
import Testing

struct UnitsTests {
    @Test func durations() {
        #expect(Units.duration("2s") == .seconds(2))
        #expect(Units.duration("500ms") == .milliseconds(500))
        #expect(Units.duration("1.5s") == .milliseconds(1500))
        #expect(Units.duration("1m") == .seconds(60))
        #expect(Units.duration("250") == .milliseconds(250))
        #expect(Units.duration("fast") == nil && Units.duration("-1s") == nil && Units.duration("3 parsecs") == nil)
    }

    @Test func sizes() {
        #expect(Units.bytes("256MiB") == 256 << 20)
        #expect(Units.bytes("64MB") == 64_000_000)
        #expect(Units.bytes("1GiB") == 1 << 30)
        #expect(Units.bytes("4096") == 4096)
        #expect(Units.bytes("1.5KiB") == 1536)
        #expect(Units.bytes("lots") == nil && Units.bytes("1 XB") == nil)
    }
}
