import Testing

@testable import SandboxOS

/// `DONE <wait status>` comes from a sandbox's side, which user code shares: only an exit status of 0–255 in wait(2)'s
/// form is taken, and anything else is not a `DONE`.
@Suite struct DoneMessageTests {
    @Test func onlyWellFormedExitStatusesAreTaken() {
        #expect(doneWaitStatus(Array("DONE 0".utf8)) == 0)
        #expect(doneWaitStatus(Array("DONE 768".utf8)) == 3 << 8)
        #expect(doneWaitStatus(Array("DONE 65280".utf8)) == 255 << 8)
        for bad in ["DONE 9", "DONE 65536", "DONE -256", "DONE x", "DONE 0 and more", "DONE", "EXIT 0", "ERR x 1", ""] {
            #expect(doneWaitStatus(Array(bad.utf8)) == nil, "\(bad)")
        }
    }
}
