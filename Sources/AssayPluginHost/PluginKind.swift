import CAssayABI

/// The four kinds of plugin, mirroring `assay_plugin_kind_t`.
public enum PluginKind: String, Sendable, CaseIterable {
    case model, sampler, verifier, reflector

    init?(abi: UInt32) {
        switch abi {
        case ASSAY_KIND_MODEL: self = .model
        case ASSAY_KIND_SAMPLER: self = .sampler
        case ASSAY_KIND_VERIFIER: self = .verifier
        case ASSAY_KIND_REFLECTOR: self = .reflector
        default: return nil
        }
    }

    /// The extension id of this kind's interface.
    public var extensionID: String {
        switch self {
        case .model: return ASSAY_EXT_MODEL
        case .sampler: return ASSAY_EXT_SAMPLER
        case .verifier: return ASSAY_EXT_VERIFIER
        case .reflector: return ASSAY_EXT_REFLECTOR
        }
    }
}

/// The ABI version this host speaks.
public enum HostABI {
    public static let major = UInt32(ASSAY_VERSION_MAJOR)
    public static let minor = UInt32(ASSAY_VERSION_MINOR)
    public static let revision = UInt32(ASSAY_VERSION_REVISION)
    public static var string: String { "\(major).\(minor).\(revision)" }
}
