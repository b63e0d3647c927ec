import Foundation

/// Python Durus 4.3 for the interoperability tests: the interpreter that the
/// test command installs into a venv in the build folder (or the one
/// `DURUS_PYTHON` names), running the scripts of one folder. Without the
/// interpreter these tests fail, saying how to get it, rather than pass.
public struct PythonScripts: Sendable {
    /// The folder the scripts are in; they run with it as working directory.
    public let folder: String

    public init(folder: String) { self.folder = folder }

    /// `DURUS_PYTHON`, else the venv `scripts/test` makes; `nil` when neither exists.
    public static var interpreterPath: String? {
        if let path = ProcessInfo.processInfo.environment["DURUS_PYTHON"], FileManager.default.isExecutableFile(atPath: path) {
            return path
        }
        let venv = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .appendingPathComponent("../../.build/durus-venv/bin/python").standardized.path
        return FileManager.default.isExecutableFile(atPath: venv) ? venv : nil
    }

    /// The interpreter, or an error saying how to get it.
    public static func interpreter() throws -> String {
        guard let interpreterPath else {
            throw PythonFailure("Python Durus 4.3 not found: run scripts/test, or set DURUS_PYTHON")
        }
        return interpreterPath
    }

    /// Starts `script` with `arguments`; standard output and error are captured.
    public func start(_ script: String, _ arguments: [String], stdin: Pipe? = nil) throws -> (Process, Pipe, Pipe) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: try Self.interpreter())
        process.arguments = [folder + "/" + script] + arguments
        process.currentDirectoryURL = URL(fileURLWithPath: folder)
        var environment = ProcessInfo.processInfo.environment
        environment["PYTHONDONTWRITEBYTECODE"] = "1"
        process.environment = environment
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        if let stdin { process.standardInput = stdin }
        try process.run()
        return (process, out, err)
    }

    /// Waits for a script `start` began; its standard output, or an error
    /// with everything it printed when it failed.
    public func finish(_ process: Process, _ out: Pipe, _ err: Pipe, _ script: String) throws -> Data {
        let output = out.fileHandleForReading.readDataToEndOfFile()
        let errors = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            throw PythonFailure("\(script) exited with \(process.terminationStatus):\n"
                + "\(String(decoding: output, as: UTF8.self))\n\(errors)")
        }
        return output
    }

    /// Runs `script` to its end and returns its standard output.
    public func run(_ script: String, _ arguments: [String]) throws -> Data {
        let (process, out, err) = try start(script, arguments)
        return try finish(process, out, err, script)
    }
}

/// A Python script that could not run, or failed.
public struct PythonFailure: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}
