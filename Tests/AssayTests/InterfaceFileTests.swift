import AssayDBus
import Foundation
import XCTest

/// The D-Bus surface is declared once (issue 11, part 5): `dist/io.assay.Assay1.xml` is what
/// `assayd --print-interfaces` derives from the declarations, the live daemon introspects
/// to exactly those elements, and every declared method and property is what dispatch and
/// `Properties` serve (nothing declared is missing, nothing served is undeclared).
final class InterfaceFileTests: XCTestCase {
    var distFile: String { TestEnvironment.repoRoot + "/dist/io.assay.Assay1.xml" }

    func testTheShippedInterfaceFileIsWhatTheDaemonDeclares() throws {
        let printed = Shell.run([TestEnvironment.assaydPath, "--print-interfaces"])
        XCTAssertEqual(printed.status, 0, printed.stderr)
        let shipped = try String(contentsOfFile: distFile, encoding: .utf8)
        XCTAssertEqual(printed.stdout, shipped,
                       "dist/io.assay.Assay1.xml is stale: regenerate it with `assayd --print-interfaces > dist/io.assay.Assay1.xml`")
    }

    /// The `<interface name="NAME">...</interface>` element of `xml`, verbatim.
    func element(_ name: String, in xml: String) -> String? {
        guard let start = xml.range(of: "  <interface name=\"\(name)\">") else { return nil }
        guard let end = xml.range(of: "  </interface>\n", range: start.upperBound..<xml.endIndex) else { return nil }
        return String(xml[start.lowerBound..<end.upperBound])
    }

    /// (method name, in-signature) and (property name, type, access) of one interface element.
    func declared(_ element: String) -> (methods: [(String, String)], properties: [(String, String, String)]) {
        var methods: [(String, String)] = [], properties: [(String, String, String)] = []
        var current: String?
        var signature = ""
        for line in element.split(separator: "\n").map({ $0.trimmingCharacters(in: .whitespaces) }) {
            func attr(_ a: String) -> String? {
                guard let r = line.range(of: a + "=\"") else { return nil }
                return String(line[r.upperBound...].prefix { $0 != "\"" })
            }
            if line.hasPrefix("<method ") {
                let name = attr("name")!
                if line.hasSuffix("/>") { methods.append((name, "")) } else { current = name; signature = "" }
            } else if line.hasPrefix("<arg "), current != nil, attr("direction") == "in" {
                signature += attr("type")!
            } else if line == "</method>", let m = current {
                methods.append((m, signature))
                current = nil
            } else if line.hasPrefix("<property ") {
                properties.append((attr("name")!, attr("type")!, attr("access")!))
            }
        }
        return (methods, properties)
    }

    func testTheLiveDaemonServesExactlyTheDeclaredInterfaces() throws {
        let shipped = try String(contentsOfFile: distFile, encoding: .utf8)
        let d = try Daemon()
        let job = try d.submit("a red disk")
        XCTAssertEqual(try d.waitFinished(job), "done")
        for (path, name) in [(Daemon.manager, "io.assay.Manager1"), (job, "io.assay.Job1")] {
            let decl = try XCTUnwrap(element(name, in: shipped), "\(name) is not in the shipped file")
            let live = try d.client.call(destination: Daemon.name, path: path, interface: "org.freedesktop.DBus.Introspectable",
                                         member: "Introspect", []).first?.stringValue ?? ""
            XCTAssertEqual(element(name, in: live), decl, "\(path) introspects \(name) differently from the shipped file")

            let (methods, properties) = declared(decl)
            XCTAssertFalse(methods.isEmpty)
            // Dispatch follows the declaration: a call with a wrong signature is refused
            // naming the declared one (so the method exists and its signature is enforced).
            for (method, signature) in methods {
                let wrong: [DBusValue] = signature == "b" ? [.string("x")] : [.bool(true)]
                let message = d.expectError("io.assay.Error.InvalidArgument") {
                    _ = try d.client.call(destination: Daemon.name, path: path, interface: name, member: method, wrong)
                }
                XCTAssertTrue(message.contains("\(method) takes (\(signature)) but got (b)"), "\(name).\(method): \(message)")
            }
            d.expectError("org.freedesktop.DBus.Error.UnknownMethod") {
                _ = try d.client.call(destination: Daemon.name, path: path, interface: name, member: "NotDeclared", [])
            }
            // Properties follow it too: GetAll has exactly the declared ones, each of its type,
            // and Set refuses the read-only ones.
            let all = try XCTUnwrap(try d.client.call(destination: Daemon.name, path: path, interface: "org.freedesktop.DBus.Properties",
                                                       member: "GetAll", [.string(name)]).first?.vardictValue)
            XCTAssertEqual(Set(all.keys), Set(properties.map(\.0)), "\(name): served and declared properties differ")
            for (property, type, access) in properties {
                XCTAssertEqual(all[property]?.signature, type, "\(name).\(property)")
                if access == "read" {
                    d.expectError("org.freedesktop.DBus.Error.PropertyReadOnly") {
                        _ = try d.client.call(destination: Daemon.name, path: path, interface: "org.freedesktop.DBus.Properties",
                                              member: "Set", [.string(name), .string(property), .variant(all[property]!)])
                    }
                }
            }
        }
    }
}
