import Testing

@testable import SandboxOS

struct SeccompPolicyTests {
    @Test func compilesToASmallProgram() throws {
        let program = try SeccompPolicy.standard.compile()
        #expect(program.instructionCount > 20 && program.instructionCount < 400)
    }

    @Test func everyRuleSaysWhy() {
        for rule in SeccompPolicy.standard.rules { #expect(!rule.reason.isEmpty, "\(rule.syscall)") }
    }

    @Test func theIssueDenyListIsCovered() {
        let names = Set(SeccompPolicy.standard.rules.map(\.syscall))
        for required in ["ptrace", "process_vm_readv", "process_vm_writev", "mount", "umount2", "pivot_root", "chroot",
                         "move_mount", "fsopen", "unshare", "setns", "clone", "bpf", "perf_event_open", "keyctl",
                         "add_key", "request_key", "userfaultfd", "io_uring_setup", "kexec_load", "init_module",
                         "reboot", "swapon", "open_by_handle_at", "socket", "ioctl", "clone3"] {
            #expect(names.contains(required), "\(required)")
        }
    }
}

struct MountPlanTests {
    @Test func mirrorsSymlinksAndBindsDirectories() {
        let plan = MountPlan.host(paths: ["/usr", "/bin", "/definitely-not-here"])
        #expect(plan.contains(.bindReadOnly(source: "/usr", target: "/usr")))
        #expect(plan.contains(.symlink(target: "/bin", text: "usr/bin")))  // Debian 12 is merged-/usr
        #expect(!plan.contains { "\($0)".contains("definitely-not-here") })
        #expect(plan.contains(.device(source: "/dev/null", target: "/dev/null")))
    }
}
