import Foundation
import Synchronization

/// The in-sandbox programs shipped with execd: `Zygote/` (zygote.py, worker.js, stdio.js) and the zygote's native
/// library, `libexecd-zygote.so` (built from `Native/` by the ZygoteLibrary plugin).
/// Read once, then served from memory: every slot start and every one-shot JavaScript run needs some of them.
enum SandboxResources {
    private static let loaded = Mutex<[String: [UInt8]]>([:])

    static func load(_ file: String, subdirectory: String? = "Zygote") throws -> [UInt8] {
        let key = (subdirectory ?? ".") + "/" + file
        if let bytes = loaded.withLock({ $0[key] }) { return bytes }
        let name = (file as NSString).deletingPathExtension, ext = (file as NSString).pathExtension
        guard let url = Bundle.module.url(forResource: name, withExtension: ext, subdirectory: subdirectory),
              let data = try? Data(contentsOf: url)
        else { throw ExecdError(.internalError, "\(file) is missing from execd's resources") }
        let bytes = Array(data)
        loaded.withLock { $0[key] = bytes }
        return bytes
    }
}
