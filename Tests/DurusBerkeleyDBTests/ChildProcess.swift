import Foundation

/// The `durus-crash-child` helper, built beside the test bundle by `swift build --build-tests`.
enum CrashChild {
    static var executable: String {
        let bundle = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        let beside = bundle.appendingPathComponent("durus-crash-child").path
        if FileManager.default.isExecutableFile(atPath: beside) { return beside }
        // Swift Testing may run from the .xctest path inside the build folder.
        let proc = URL(fileURLWithPath: (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? "")
        return proc.deletingLastPathComponent().appendingPathComponent("durus-crash-child").path
    }

    /// Starts the helper with `arguments`; its standard output and error are captured.
    static func start(_ arguments: [String]) throws -> (Process, Pipe, Pipe) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        let out = Pipe()
        let err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        return (process, out, err)
    }

    /// Starts the helper, waits until it prints "ready" (its store open,
    /// recovery included, so the kill lands in its work however slow the
    /// machine is), lets it run for `delay` microseconds, and kills it with
    /// SIGKILL. Returns its output, its standard error, and whether it died
    /// of the signal (rather than by itself).
    static func killAfterReady(_ arguments: [String], delay: UInt32) throws -> (output: String, errors: String, killed: Bool) {
        let (process, out, err) = try start(arguments)
        var early = Data()
        while !String(decoding: early, as: UTF8.self).contains("ready") {
            let chunk = out.fileHandleForReading.availableData
            if chunk.isEmpty { break }
            early.append(chunk)
        }
        usleep(delay)
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
        let output = String(decoding: early + out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        let errors = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        return (output, errors, process.terminationReason == .uncaughtSignal)
    }

    /// Runs the helper to its end and returns its standard output lines and status.
    static func run(_ arguments: [String]) throws -> (lines: [String], status: Int32, error: String) {
        let (process, out, err) = try start(arguments)
        let output = out.fileHandleForReading.readDataToEndOfFile()
        let errors = err.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (String(decoding: output, as: UTF8.self).split(separator: "\n").map(String.init),
                process.terminationStatus, String(decoding: errors, as: UTF8.self))
    }
}
