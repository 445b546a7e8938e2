import Foundation

/// The in-sandbox programs shipped with execd: `Zygote/` (zygote.py, worker.js, stdio.js) and the zygote's native
/// library, `libexecd-zygote.so` (built from `Native/` by the ZygoteLibrary plugin).
enum SandboxResources {
    static func load(_ file: String, subdirectory: String? = "Zygote") throws -> [UInt8] {
        let name = (file as NSString).deletingPathExtension, ext = (file as NSString).pathExtension
        guard let url = Bundle.module.url(forResource: name, withExtension: ext, subdirectory: subdirectory),
              let data = try? Data(contentsOf: url)
        else { throw ExecdError(.internalError, "\(file) is missing from execd's resources") }
        return Array(data)
    }
}
