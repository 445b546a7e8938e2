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

/// The zygote's reports on its control socket (zygote.py lists them), parsed in one place for the run and the slot.
@Suite struct ZygoteReportTests {
    @Test func everyReportAndNothingElse() {
        #expect(ZygoteRun.report(Array("WARM".utf8)) == .warm(previousStatus: nil))
        #expect(ZygoteRun.report(Array("WARM 256".utf8)) == .warm(previousStatus: 256))
        #expect(ZygoteRun.report(Array("EXIT 9".utf8)) == .exit(status: 9))
        #expect(ZygoteRun.report(Array("ERR setresuid 1".utf8)) == .error(detail: "setresuid 1"))
        #expect(ZygoteRun.report(Array("COPY 250".utf8)) == .copied(pages: 250))
        for bad in ["WARM x", "WARM ", "EXIT", "EXIT x", "ERR", "COPY", "COPY x", "DONE 0", "WARMER", ""] {
            #expect(ZygoteRun.report(Array(bad.utf8)) == nil, "\(bad)")
        }
    }
}
