import ArgumentParser
import AssayPluginHost
import Glibc

/// `assayctl`: the command-line client of the Assay daemon (io.assay.Assay1 on D-Bus).
@main
struct AssayCtl: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "assayctl",
        abstract: "Talk to the Assay daemon (io.assay.Assay1): submit best-of-N jobs, watch them, fetch results.",
        discussion: """
        Bus: the session bus by default; --system or --address ADDR
        (e.g. unix:path=/tmp/bus) select another. They may come before or after
        the subcommand: assayctl --address ADDR plugins.

        Exit codes (stable, for scripts):
          0  success; for generate/wait/replay: the job is done. A job that
             stopped on its NFE budget or deadline with a result is done too:
             its summary says "stop reason: budget" (or deadline).
          1  the job failed (or a replay's result differs from the manifest's)
          2  usage error (bad or missing arguments)
          3  the daemon answered with a D-Bus error; stderr then says
             "assayctl: io.assay.Error.<Name>: <message>" (InvalidArgument, InvalidImage,
             UnknownPlugin, QueueFull, NotFound, AccessDenied, NotReady, Failed)
          4  the daemon is not reachable: no bus, or nobody owns io.assay.Assay1
          5  the job was cancelled. Ctrl-C during generate/replay cancels the
             job, waits for it to end and exits 5 (a second Ctrl-C exits 130
             at once); Ctrl-C during wait leaves the job alone (exit 130).
          6  a local problem: cannot write --out, cannot read a manifest, ...
        """,
        subcommands: [Generate.self, Plugins.self, Strategies.self, Jobs.self, Status.self, Cancel.self, Reload.self,
                      Wait.self, Replay.self, Score.self, ReportCommand.self])

    /// Runs the command; maps failures to the documented exit codes (ArgumentParser's own
    /// usage errors would exit 64; they exit 2 here).
    static func main() {
        let args = hoistGlobalOptions(Array(CommandLine.arguments.dropFirst()))
        do {
            var command = try parseAsRoot(args)
            try command.run()
        } catch let failure as Failure {
            Console.flushOutput()
            if !failure.message.isEmpty { Console.error("assayctl: \(failure.message)\n") }
            Glibc.exit(failure.code)
        } catch {
            if exitCode(for: error) == .validationFailure {
                Console.error(fullMessage(for: error) + "\n")
                Glibc.exit(ExitStatus.usage)
            }
            exit(withError: error)
        }
    }

    /// `assayctl --address A generate ...` → `assayctl generate --address A ...`: ArgumentParser
    /// only knows options after the subcommand that declares them.
    static func hoistGlobalOptions(_ args: [String]) -> [String] {
        var globals: [String] = []
        var i = 0
        while i < args.count {
            let a = args[i]
            if a == "--system" || a.hasPrefix("--address=") {
                globals.append(a); i += 1
            } else if a == "--address", i + 1 < args.count {
                globals += [a, args[i + 1]]; i += 2
            } else { break }
        }
        guard !globals.isEmpty, i < args.count, !args[i].hasPrefix("-") else { return args }
        return [args[i]] + globals + args[(i + 1)...]
    }
}

/// The documented exit codes.
enum ExitStatus {
    static let success: Int32 = 0
    static let jobFailed: Int32 = 1
    static let usage: Int32 = 2
    static let daemonError: Int32 = 3
    static let unreachable: Int32 = 4
    static let cancelled: Int32 = 5
    static let local: Int32 = 6

    /// The exit code for a job's final state.
    static func forState(_ state: String) -> Int32 {
        switch state {
        case "done": return success
        case "cancelled": return cancelled
        default: return jobFailed
        }
    }
}

/// Ends the program with `code`, printing `message` (if any) after "assayctl: " on stderr.
struct Failure: Error {
    let code: Int32
    let message: String
    init(_ code: Int32, _ message: String = "") {
        self.code = code
        self.message = message
    }
}
