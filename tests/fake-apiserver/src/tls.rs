//! The cluster's PKI: a CA made at start, the serving certificate and client
//! certificates (CN = user, O = group, like kube-apiserver's x509 authenticator).

use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SerialNumber,
};
use rustls::ServerConfig;
use rustls::server::WebPkiClientVerifier;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

pub struct Pki {
    pub ca_pem: String,
    issuer: Issuer<'static, KeyPair>,
    pub server_config: Arc<ServerConfig>,
}

/// ring's suites in the order Go's crypto/tls server prefers them (since Go
/// 1.17, <https://go.dev/blog/tls-cipher-suites>): AES-128-GCM before
/// AES-256-GCM before ChaCha20, on hardware with AES instructions. A rustls
/// client offers AES-256 first, and kube-apiserver still answers with
/// AES-128, which is cheaper to decrypt; the fake server does the same.
/// (Go prefers ChaCha20 when the client lists it first; rustls clients on
/// AES hardware never do.)
fn go_like_provider() -> rustls::crypto::CryptoProvider {
    let mut provider = rustls::crypto::ring::default_provider();
    use rustls::CipherSuite as S;
    let rank = |s: &rustls::SupportedCipherSuite| match s.suite() {
        S::TLS13_AES_128_GCM_SHA256
        | S::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256
        | S::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256 => 0,
        S::TLS13_AES_256_GCM_SHA384
        | S::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384
        | S::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384 => 1,
        _ => 2,
    };
    provider.cipher_suites.sort_by_key(rank);
    provider
}

impl Pki {
    /// A new CA and a serving certificate for `host`. The default host
    /// "localhost" also gets the 127.0.0.1 IP SAN; any other name is the only
    /// SAN (so a client of https://127.0.0.1 sees a name mismatch).
    pub fn new(host: &str) -> Pki {
        let provider = Arc::new(go_like_provider());
        let ca_key = KeyPair::generate().expect("CA key");
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, "fake-apiserver-ca");
        ca_params.distinguished_name = dn;
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca_cert = ca_params.self_signed(&ca_key).expect("CA cert");
        let ca_pem = ca_cert.pem();
        let ca_der: CertificateDer<'static> = ca_cert.der().clone();
        let issuer = Issuer::new(ca_params, ca_key);

        let mut sans = vec![host.to_string()];
        if host == "localhost" {
            sans.push("127.0.0.1".to_string());
        }
        let mut params = CertificateParams::new(sans).expect("server params");
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, "kube-apiserver");
        params.distinguished_name = dn;
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.use_authority_key_identifier_extension = true;
        let key = KeyPair::generate().expect("server key");
        let cert = params.signed_by(&key, &issuer).expect("server cert");

        let mut roots = rustls::RootCertStore::empty();
        roots.add(ca_der).expect("CA into root store");
        let verifier =
            WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                .allow_unauthenticated()
                .build()
                .expect("client verifier");
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("protocol versions")
            .with_client_cert_verifier(verifier)
            .with_single_cert(
                vec![cert.der().clone()],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
            )
            .expect("server config");
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        // Go's crypto/tls server (kube-apiserver) picks the suite by its own
        // order, not the client's.
        config.ignore_client_order = true;
        Pki {
            ca_pem,
            issuer,
            server_config: Arc::new(config),
        }
    }

    /// A client certificate signed by the CA: CN = user, O = first group
    /// (rcgen writes a single O; the server remembers the other groups by user).
    /// Returns (cert pem, key pem).
    pub fn issue_client_cert(&self, user: &str, groups: &[&str], serial: u64) -> (String, String) {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("client params");
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, user);
        if let Some(g) = groups.first() {
            dn.push(DnType::OrganizationName, *g);
        }
        params.distinguished_name = dn;
        params.serial_number = Some(SerialNumber::from(serial));
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.use_authority_key_identifier_extension = true;
        let key = KeyPair::generate().expect("client key");
        let cert = params.signed_by(&key, &self.issuer).expect("client cert");
        (cert.pem(), key.serialize_pem())
    }
}

/// User (CN) and groups (every O) of a verified client certificate.
pub fn cert_identity(der: &[u8]) -> Option<(String, Vec<String>)> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let subject = cert.subject();
    let user = subject
        .iter_common_name()
        .next()?
        .as_str()
        .ok()?
        .to_string();
    let groups = subject
        .iter_organization()
        .filter_map(|o| o.as_str().ok().map(str::to_string))
        .collect();
    Some((user, groups))
}
