// durus-bench: swift-durus measured side by side with what it is compared against.
//
//   swift run -c release durus-bench storage [--objects N] [--loads N]
//   swift run -c release durus-bench objects [--objects N] [--python PATH|none] [--rounds N] ...
//   swift run -c release durus-bench gc [--small N] [--large N] [--garbage N]
//   swift run -c release durus-bench pickles [--objects N] [--cold N] [--rounds N] [--python PATH]
//   swift run -c release durus-bench collections [--entries N] [--orders 16,32,64,128] [--python PATH]
//   swift run -c release durus-bench server [--python PATH] [--objects N] [--seconds S] [--rounds N]
//   swift run -c release durus-bench server-commits [--clients N] [--seconds S] [--durability MODE]
//   swift run -c release durus-bench server-loads [--clients N] [--seconds S]
//   swift run -c release durus-bench server-latency [--seconds S]
//   swift run -c release durus-bench objects-create [--objects N] [--batch N] [--cold N] [--rmw N]
//   swift run -c release durus-bench migrate [--python PATH] [--objects N]
//   swift run -c release durus-bench replication [--seconds S] [--clients N] [--lag-commits N]
//
// Each suite prints a table and ends with one line per comparison:
// `ratio <name> <ours ÷ theirs>` (above 1 means we are faster).
import Foundation

let arguments = Array(CommandLine.arguments.dropFirst())
let suites: [String: ([String]) throws -> Void] = [
    "storage": runStorageSuite,
    "objects": runObjectsSuite,
    "collections": runCollectionsSuite,
    "pickles": runPicklesSuite,
    "gc": runGCSuite,
    "server": runServerSuite,
    // One phase of the server suite alone, to profile it.
    "server-commits": runServerCommitsProfile,
    "server-loads": runServerLoadsProfile,
    "server-latency": runServerLatencyProfile,
    // The objects suite's create phase alone, to profile it.
    "objects-create": runObjectsCreateProfile,
    "pickles-create": runPicklesCreateProfile,
    "pickles-cold": runPicklesColdProfile,
    "migrate": runMigrateSuite,
    "replication": runReplicationSuite,
    // The migrate suite runs each migration in a child process of its own.
    "migrate-child": runMigrateChild,
]

guard let name = arguments.first, let suite = suites[name] else {
    print("usage: durus-bench SUITE [options]\nsuites: \(suites.keys.filter { !$0.hasSuffix("-child") }.sorted().joined(separator: ", "))")
    exit(2)
}
do {
    try suite(Array(arguments.dropFirst()))
} catch {
    print("durus-bench: \(error)")
    exit(1)
}
