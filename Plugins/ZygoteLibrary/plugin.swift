import PackagePlugin

/// Compiles ExecdCore's `Native/execd_zygote.c` (and CExecChild's `sys.c`) with the toolchain's clang into `libexecd-zygote.so`, which SwiftPM
/// then copies into ExecdCore's resource bundle. Not a SwiftPM library product: those link the Swift runtime, which
/// does not exist inside a sandbox; this one needs libc only.
@main
struct ZygoteLibrary: BuildToolPlugin {
    func createBuildCommands(context: PluginContext, target: Target) async throws -> [Command] {
        let native = target.directoryURL.appending(path: "Native")
        let source = native.appending(path: "execd_zygote.c")
        let header = native.appending(path: "execd_zygote.h")
        // CExecChild's syscall wrappers (fd passing, file writing) are compiled in too: they need libc only.
        let shared = context.package.directoryURL.appending(path: "Sources/CExecChild")
        let sharedSource = shared.appending(path: "sys.c")
        let sharedHeader = shared.appending(path: "include/exec_sys.h")
        let output = context.pluginWorkDirectoryURL.appending(path: "libexecd-zygote.so")
        return [
            .buildCommand(
                displayName: "Compiling the Python zygote's native library",
                executable: try context.tool(named: "clang").url,
                arguments: ["-O2", "-g0", "-std=gnu11", "-Wall", "-Wextra", "-Werror", "-fPIC", "-shared",
                            "-Wl,-z,now", "-Wl,-z,relro", "-I", native.path(), "-I", shared.appending(path: "include").path(),
                            "-o", output.path(), source.path(), sharedSource.path()],
                inputFiles: [source, header, sharedSource, sharedHeader],
                outputFiles: [output]
            )
        ]
    }
}
