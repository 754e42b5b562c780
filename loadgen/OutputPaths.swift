#if canImport(Glibc)
import Glibc
#endif
import ArgumentParser
import EchoProtocol
import Foundation

/// Output paths checked before the first connection: a run of minutes must not end by finding its
/// CSV file of the wrong kind or its folder missing. Each problem is one usage error naming the option.
enum OutputPaths {
    /// A file loadgen will write or append to: not a folder, and writable where it is (or, new, in a
    /// folder that exists and is writable). Nothing is created here.
    static func checkFile(_ path: String, option: String) throws {
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) {
            guard !isDirectory.boolValue else { throw ValidationError("\(option) \(path) is a folder; give a file") }
            guard access(path, W_OK) == 0 else { throw ValidationError("\(option) \(path) cannot be written: \(errnoDescription(errno))") }
            return
        }
        let folder = URL(fileURLWithPath: path).deletingLastPathComponent().path
        guard FileManager.default.fileExists(atPath: folder, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw ValidationError("\(option) \(path): the folder \(folder) does not exist")
        }
        guard access(folder, W_OK) == 0 else {
            throw ValidationError("\(option) \(path): the folder \(folder) cannot be written: \(errnoDescription(errno))")
        }
    }

    /// A CSV file that gets one row of `header`'s columns: writable, and if it already has a header,
    /// the same one (`kind` names the rows in the message: run, idle, churn, curve).
    static func checkCSV(_ path: String, header: [String], kind: String, option: String = "--csv") throws {
        try checkFile(path, option: option)
        guard let existing = readText(path), !existing.isEmpty else { return }
        let headerLine = header.map(TextFormat.csvField).joined(separator: ",")
        if existing.split(separator: "\n", maxSplits: 1).first.map(String.init) != headerLine {
            throw ValidationError("\(option) \(path) holds rows of another kind than \(kind) (its header differs); give another file")
        }
    }

    /// A folder loadgen writes into, creating it and its parents if needed: not a file, and its
    /// nearest existing ancestor a writable folder.
    static func checkFolder(_ path: String, option: String) throws {
        var isDirectory: ObjCBool = false
        var url = URL(fileURLWithPath: path).standardizedFileURL
        if FileManager.default.fileExists(atPath: url.path, isDirectory: &isDirectory) {
            guard isDirectory.boolValue else { throw ValidationError("\(option) \(path) is a file, not a folder; give a folder") }
            guard access(url.path, W_OK) == 0 else { throw ValidationError("\(option) \(path) cannot be written: \(errnoDescription(errno))") }
            return
        }
        while url.path != "/" {
            url.deleteLastPathComponent()
            if FileManager.default.fileExists(atPath: url.path, isDirectory: &isDirectory) {
                guard isDirectory.boolValue else {
                    throw ValidationError("\(option) \(path) cannot be made: \(url.path) is a file")
                }
                guard access(url.path, W_OK) == 0 else {
                    throw ValidationError("\(option) \(path) cannot be made in \(url.path): \(errnoDescription(errno))")
                }
                return
            }
        }
    }
}
