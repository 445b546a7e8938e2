import PackagePlugin

/// Compiles ExecdCore's `Native/execd_zygote.c` with the toolchain's clang into `libexecd-zygote.so`, which SwiftPM
/// then copies into ExecdCore's resource bundle. Not a SwiftPM library product: those link the Swift runtime, which
/// does not exist inside a sandbox; this one needs libc only.
@main
struct ZygoteLibrary: BuildToolPlugin {
    func createBuildCommands(context: PluginContext, target: Target) async throws -> [Command] {
        let native = target.directoryURL.appending(path: "Native")
        let source = native.appending(path: "execd_zygote.c")
        let header = native.appending(path: "execd_zygote.h")
        let output = context.pluginWorkDirectoryURL.appending(path: "libexecd-zygote.so")
        return [
            .buildCommand(
                displayName: "Compiling the Python zygote's native library",
                executable: try context.tool(named: "clang").url,
                arguments: ["-O2", "-g0", "-std=gnu11", "-Wall", "-Wextra", "-Werror", "-fPIC", "-shared",
                            "-Wl,-z,now", "-Wl,-z,relro", "-I", native.path(), "-o", output.path(), source.path()],
                inputFiles: [source, header],
                outputFiles: [output]
            )
        ]
    }
}
