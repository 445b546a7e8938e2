import Glibc
import NIOCore

/// The process on the other end of a Unix socket (SO_PEERCRED), for logs and authorization.
struct PeerCredentials: Sendable {
    // Laid out like `struct ucred`, which Glibc exposes only under _GNU_SOURCE.
    var pid: Int32 = 0
    var uid: UInt32 = 0
    var gid: UInt32 = 0

    static func of(_ channel: any Channel) -> EventLoopFuture<PeerCredentials>? {
        guard let provider = channel as? any SocketOptionProvider else { return nil }
        return provider.unsafeGetSocketOption(level: SocketOptionLevel(SOL_SOCKET), name: SO_PEERCRED)
    }
}
