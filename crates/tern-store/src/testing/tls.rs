//! Certificates for tests, made with rcgen: a CA of its own, and the server and client
//! certificates it signs, written as PEM files (ECDSA P-256 keys, PKCS#8).

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};

/// A certificate and its private key, as PEM files.
#[derive(Clone, Debug)]
pub struct CertFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// A certificate authority for tests. Its files go to the directory it was generated in.
pub struct TestCa {
    issuer: Issuer<'static, KeyPair>,
    dir: PathBuf,
    cert_path: PathBuf,
}

impl std::fmt::Debug for TestCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestCa").field("cert_path", &self.cert_path).finish()
    }
}

impl TestCa {
    /// A new CA (common name "`name` test CA"), its certificate written to `dir/NAME-ca.pem`
    /// (`dir` is created if missing).
    pub fn generate(dir: &Path, name: &str) -> Result<TestCa, String> {
        std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        let key = KeyPair::generate().map_err(|e| format!("cannot generate a CA key: {e}"))?;
        let mut params = CertificateParams::default();
        params.distinguished_name.push(DnType::CommonName, format!("{name} test CA"));
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages =
            vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
        let cert = params.self_signed(&key).map_err(|e| format!("cannot sign the CA certificate: {e}"))?;
        let cert_path = dir.join(format!("{name}-ca.pem"));
        write(&cert_path, &cert.pem())?;
        Ok(TestCa { issuer: Issuer::new(params, key), dir: dir.to_path_buf(), cert_path })
    }

    /// The CA certificate (PEM).
    pub fn cert_path(&self) -> &Path {
        &self.cert_path
    }

    /// A server certificate for 127.0.0.1 and localhost (usable as a client certificate too, as
    /// etcd uses its own), written to `NAME.pem` and `NAME-key.pem`.
    pub fn server(&self, name: &str) -> Result<CertFiles, String> {
        let sans = vec![
            SanType::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST)),
            SanType::DnsName("localhost".try_into().map_err(|e| format!("bad DNS name: {e}"))?),
        ];
        self.issue(name, sans, vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth])
    }

    /// A client certificate with common name `name`, written to `NAME.pem` and `NAME-key.pem`.
    pub fn client(&self, name: &str) -> Result<CertFiles, String> {
        self.issue(name, Vec::new(), vec![ExtendedKeyUsagePurpose::ClientAuth])
    }

    fn issue(
        &self,
        name: &str,
        sans: Vec<SanType>,
        usages: Vec<ExtendedKeyUsagePurpose>,
    ) -> Result<CertFiles, String> {
        let key = KeyPair::generate().map_err(|e| format!("cannot generate a key for {name}: {e}"))?;
        let mut params = CertificateParams::default();
        params.distinguished_name.push(DnType::CommonName, name);
        params.subject_alt_names = sans;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = usages;
        let cert = params
            .signed_by(&key, &self.issuer)
            .map_err(|e| format!("cannot sign a certificate for {name}: {e}"))?;
        let files = CertFiles {
            cert: self.dir.join(format!("{name}.pem")),
            key: self.dir.join(format!("{name}-key.pem")),
        };
        write(&files.cert, &cert.pem())?;
        write(&files.key, &key.serialize_pem())?;
        Ok(files)
    }
}

fn write(path: &Path, pem: &str) -> Result<(), String> {
    std::fs::write(path, pem).map_err(|e| format!("cannot write {}: {e}", path.display()))
}
