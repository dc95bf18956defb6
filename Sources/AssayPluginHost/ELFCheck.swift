/// Cheap structural checks of an ELF file before it reaches dlopen.
///
/// dlopen maps segments straight from the file: a truncated file (a build still being
/// written, a partial copy) can map fine and then SIGBUS the daemon when code past the end
/// of the file is touched. So every loadable segment and the section table must lie inside
/// the file, and the file must be a shared object for this machine.
enum ELFCheck {
    static func problem(_ b: [UInt8]) -> String? {
        guard b.count >= 64, b[0] == 0x7f, b[1] == 0x45, b[2] == 0x4c, b[3] == 0x46 else {
            return "not an ELF shared object (\(b.count) bytes): is the file complete?"
        }
        guard b[4] == 2, b[5] == 1 else { return "not a 64-bit little-endian ELF file" }
        func u16(_ o: Int) -> Int { Int(b[o]) | Int(b[o + 1]) << 8 }
        func u64(_ o: Int) -> UInt64 { (0..<8).reduce(UInt64(0)) { $0 | UInt64(b[o + $1]) << (8 * UInt64($1)) } }
        guard u16(16) == 3 else { return "an ELF file but not a shared object (e_type \(u16(16))): build it with -shared" }
        #if arch(x86_64)
        let machine = 62
        #elseif arch(arm64)
        let machine = 183
        #else
        let machine = u16(18)
        #endif
        guard u16(18) == machine else { return "built for another architecture (e_machine \(u16(18)), this host is \(machine))" }
        let size = UInt64(b.count)
        let phoff = u64(0x20), shoff = u64(0x28)
        let phentsize = UInt64(u16(0x36)), phnum = UInt64(u16(0x38))
        let shentsize = UInt64(u16(0x3A)), shnum = UInt64(u16(0x3C))
        guard phentsize >= 56, phoff + phnum * phentsize <= size else { return "truncated: the program headers lie past the end of the file" }
        if shnum > 0 && shoff + shnum * shentsize > size { return "truncated: the section headers lie past the end of the file (\(b.count) bytes)" }
        for i in 0..<phnum {
            let h = Int(phoff + i * phentsize)
            guard b[h] == 1, b[h + 1] == 0, b[h + 2] == 0, b[h + 3] == 0 else { continue } // PT_LOAD
            let offset = u64(h + 8), filesz = u64(h + 32)
            if offset + filesz > size {
                return "truncated: a loadable segment ends at byte \(offset + filesz) but the file has \(b.count): is it still being written?"
            }
        }
        return nil
    }
}
