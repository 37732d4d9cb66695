//! Client TLS for both transports: one rustls configuration built from `tls:`.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use tapline_core::tls::{crypto_provider, load_certs, load_key};

use super::config::TlsClientConfig;

/// Accepts every server certificate (`insecure_skip_verify: true`), but still checks the
/// handshake signatures so the connection is at least to the holder of the presented key.
#[derive(Debug)]
struct AcceptAnyServer(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for AcceptAnyServer {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// What both transports need: who to trust, and who we are.
pub struct ClientTls {
    pub verifier: Arc<dyn ServerCertVerifier>,
    pub identity: Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>,
    /// PEM text of the client identity, for tonic.
    pub identity_pem: Option<(Vec<u8>, Vec<u8>)>,
}

impl ClientTls {
    pub fn new(cfg: &TlsClientConfig, path: &str) -> Result<ClientTls, String> {
        let provider = crypto_provider();
        let verifier: Arc<dyn ServerCertVerifier> = if cfg.insecure_skip_verify {
            Arc::new(AcceptAnyServer(provider.clone()))
        } else {
            let mut roots = rustls::RootCertStore::empty();
            match &cfg.ca_file {
                Some(ca) => {
                    let what = format!("{path}.tls.ca_file");
                    for c in load_certs(ca, &what)? {
                        roots.add(c).map_err(|e| format!("{what}: {e}"))?;
                    }
                }
                None => {
                    let native = rustls_native_certs::load_native_certs();
                    for c in native.certs {
                        let _ = roots.add(c);
                    }
                }
            }
            rustls::client::WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| format!("{path}.tls: {e}"))?
        };
        let (identity, identity_pem) = match (&cfg.cert_file, &cfg.key_file) {
            (Some(c), Some(k)) => {
                let cw = format!("{path}.tls.cert_file");
                let kw = format!("{path}.tls.key_file");
                let certs = load_certs(c, &cw)?;
                let key = load_key(k, &kw)?;
                let cpem = std::fs::read(c).map_err(|e| format!("{cw}: {e}"))?;
                let kpem = std::fs::read(k).map_err(|e| format!("{kw}: {e}"))?;
                (Some((certs, key)), Some((cpem, kpem)))
            }
            (None, None) => (None, None),
            _ => {
                return Err(format!(
                    "{path}.tls: cert_file and key_file go together; set both or neither"
                ))
            }
        };
        Ok(ClientTls {
            verifier,
            identity,
            identity_pem,
        })
    }

    /// A rustls client config announcing `alpn`.
    pub fn rustls_config(
        &self,
        alpn: &[&[u8]],
        path: &str,
    ) -> Result<rustls::ClientConfig, String> {
        let builder = rustls::ClientConfig::builder_with_provider(crypto_provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("{path}.tls: {e}"))?
            .dangerous()
            .with_custom_certificate_verifier(self.verifier.clone());
        let mut config = match &self.identity {
            Some((certs, key)) => builder
                .with_client_auth_cert(certs.clone(), key.clone_key())
                .map_err(|e| format!("{path}.tls: client certificate and key: {e}"))?,
            None => builder.with_no_client_auth(),
        };
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Ok(config)
    }
}
