/// Tells GnuTLS not to initialise itself when it is loaded: GnuTLS's documented switch for a
/// program (`GNUTLS_SKIP_GLOBAL_INIT` in gnutls.h), a definition that overrides the weak
/// one in libgnutls.
///
/// Why: Debian's libcurl is built on OpenSSL, but its librtmp and libldap link GnuTLS, so
/// GnuTLS is loaded into the daemon and its library constructor sets itself up (random pool,
/// crypto back-ends, system priorities, p11-kit) although nothing here calls it. That costs
/// about 0.6 MiB resident for the daemon's whole life (daemon-bench, README). A libcurl built
/// on GnuTLS still works: it calls `gnutls_global_init` itself before its first use, which
/// is the explicit initialisation this switch leaves to the library's users.
///
/// The symbol must be in the executable's dynamic symbol table for libgnutls to find it;
/// Package.swift's release link exports it by name, debug links export everything.
@_cdecl("_gnutls_global_init_skip")
public func gnutlsGlobalInitSkip() -> Int32 { 1 }
