//! TLS for the server: the certificate and key files, the rustls configuration built from them,
//! and its reload (SIGHUP) that keeps the old pair when the new one is bad.
//!
//! The crypto provider is `ring`: it builds on a fresh machine with only the Rust toolchain and
//! a C compiler (its C and assembly come pre-generated), where aws-lc-rs also wants CMake for
//! some targets and takes several times longer to build. shelf gives up aws-lc-rs's
//! post-quantum key exchange and FIPS mode for that; TLS 1.2 and 1.3 with the modern suites
//! are the same in both.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::ServerConfig;

/// Why a certificate/key pair cannot be used.
#[derive(Debug)]
pub struct TlsError(String);

impl fmt::Display for TlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for TlsError {}

impl From<TlsError> for io::Error {
    fn from(e: TlsError) -> io::Error {
        io::Error::new(io::ErrorKind::InvalidInput, e.0)
    }
}

/// The server's TLS settings: where the pair is read from, and the configuration in use.
pub struct Tls {
    cert: PathBuf,
    key: PathBuf,
    current: RwLock<Arc<ServerConfig>>,
}

impl Tls {
    /// Reads and checks the PEM certificate chain and private key.
    pub fn load(cert: &Path, key: &Path) -> Result<Tls, TlsError> {
        let config = build(cert, key)?;
        Ok(Tls {
            cert: cert.to_path_buf(),
            key: key.to_path_buf(),
            current: RwLock::new(config),
        })
    }

    /// Reads the files again. A pair that does not load leaves the one in use in place.
    /// Connections keep their sessions; new handshakes use the new pair.
    pub fn reload(&self) -> Result<(), TlsError> {
        let config = build(&self.cert, &self.key)?;
        match self.current.write() {
            Ok(mut c) => *c = config,
            Err(p) => *p.into_inner() = config,
        }
        Ok(())
    }

    pub fn cert_path(&self) -> &Path {
        &self.cert
    }

    /// A new server session with the configuration in use.
    pub(super) fn session(&self) -> Result<rustls::ServerConnection, rustls::Error> {
        let config = match self.current.read() {
            Ok(c) => Arc::clone(&c),
            Err(p) => Arc::clone(&p.into_inner()),
        };
        rustls::ServerConnection::new(config)
    }
}

fn build(cert: &Path, key: &Path) -> Result<Arc<ServerConfig>, TlsError> {
    let chain = read_chain(cert)?;
    let key_der = read_key(key)?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| TlsError(format!("TLS protocol versions: {e}")))?
        .with_no_client_auth()
        .with_single_cert(chain, key_der)
        .map_err(|e| {
            TlsError(format!(
                "TLS certificate {} with key {}: {}",
                cert.display(),
                key.display(),
                describe(&e)
            ))
        })?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

fn read_chain(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let data = read(path, "certificate")?;
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&data)
        .collect::<Result<_, _>>()
        .map_err(|e| {
            TlsError(format!(
                "TLS certificate {}: not valid PEM: {e}",
                path.display()
            ))
        })?;
    if chain.is_empty() {
        return Err(TlsError(format!(
            "TLS certificate {}: no \"BEGIN CERTIFICATE\" block in it",
            path.display()
        )));
    }
    Ok(chain)
}

fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let data = read(path, "key")?;
    PrivateKeyDer::from_pem_slice(&data).map_err(|e| {
        TlsError(format!(
            "TLS key {}: no usable private key in it (PKCS#8, PKCS#1 or SEC1 PEM): {e}",
            path.display()
        ))
    })
}

fn read(path: &Path, what: &str) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|e| {
        TlsError(format!(
            "cannot read the TLS {what} {}: {e}",
            path.display()
        ))
    })
}

fn describe(e: &rustls::Error) -> String {
    match e {
        rustls::Error::InconsistentKeys(_) => {
            "the private key does not belong to the certificate".to_string()
        }
        e => e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_or_empty_files_are_clear_errors() {
        let dir = std::env::temp_dir().join(format!("shelf-tls-unit-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let cert = dir.join("cert.pem");
        let key = dir.join("key.pem");
        let e = Tls::load(&cert, &key).err().map(|e| e.to_string());
        assert!(
            e.as_deref()
                .is_some_and(|e| e.starts_with("cannot read the TLS certificate")),
            "{e:?}"
        );
        std::fs::write(&cert, "not pem\n").ok();
        std::fs::write(&key, "not pem either\n").ok();
        let e = Tls::load(&cert, &key).err().map(|e| e.to_string());
        assert!(
            e.as_deref()
                .is_some_and(|e| e.contains("no \"BEGIN CERTIFICATE\" block")),
            "{e:?}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
