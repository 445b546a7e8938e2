import ExecProtocol
import Foundation
import Glibc
import Testing

/// `LocalExecutor` runs submissions unsandboxed inside the test process, where other suites run at the same time
/// and hold sockets: the in-process test daemon's connections and its clients'. SwiftNIO opens sockets without
/// close-on-exec (`accept4` with `SOCK_NONBLOCK` only), so a spawned program inherits them unless the spawn closes
/// them, and some submissions in the problem set write forged frames to every fd they hold
/// (py_two_sum/forge_fd.py). That once landed in a test client as a 95-byte "Response" that did not decode.
struct LocalExecutorTests {
    @Test func programsGetOnlyTheirOwnFileDescriptors() async throws {
        // A connected pair made the way SwiftNIO makes its sockets: without close-on-exec.
        var pair: [Int32] = [-1, -1]
        try #require(socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0, &pair) == 0)
        defer { for fd in pair { close(fd) } }
        var request = Execd_V1_RunRequest()
        request.language = .python
        request.code = Data(
            """
            import os
            for fd in range(3, 1024):  # like forge_fd.py: a frame to every fd this process holds
                try: os.write(fd, b"\\0\\0\\0\\6forged")
                except OSError: pass
            print(sorted(int(fd) for fd in os.listdir("/proc/self/fd")))
            """.utf8
        )
        let result = try await LocalExecutor().execute(request, sideChannel: nil)
        #expect(result.status == .ok, "\(String(decoding: result.stderr, as: UTF8.self))")
        // stdin, stdout, stderr, the side channel, and the directory listdir reads.
        #expect(String(decoding: result.stdout, as: UTF8.self) == "[0, 1, 2, 3, 4]\n")
        for fd in pair {
            var byte: UInt8 = 0
            let n = recv(fd, &byte, 1, Int32(MSG_DONTWAIT))
            #expect(n < 0 && errno == EAGAIN, "the program wrote into a socket of the test process (fd \(fd))")
        }
    }
}
