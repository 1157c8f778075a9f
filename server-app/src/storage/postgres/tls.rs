//! TLS to PostgreSQL with rustls (aws-lc-rs as the crypto provider): the
//! `MakeTlsConnect` that `tokio-postgres` negotiates with (see [`super::sslmode`]
//! for what each `sslmode` asks).
//!
//! `tokio-postgres` sends the SSLRequest and decides, from its own mode (`prefer` or
//! `require`), whether a refusal ends the connection; this connector does the
//! handshake and checks the certificate as far as the mode asks: not at all
//! (`prefer`, `require`), the chain against the CA file (`verify-ca`), or the chain and
//! the host name (`verify-full`). The handshake signatures are always checked, so the
//! server holds the key of the certificate it shows.
//!
//! No channel binding is offered (SCRAM without `-PLUS`), as with `channel_binding`
//! left at `prefer` by a libpq built without it.

use std::future::Future;
use std::io;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use thiserror::Error;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_postgres::tls::{ChannelBinding, MakeTlsConnect, TlsConnect, TlsStream};

use super::sslmode::{SslMode, TlsSettings, TlsSettingsError};

/// A TLS handshake with the database that failed.
#[derive(Debug, Error)]
pub enum TlsError {
    /// The host name is no DNS name or IP address (`verify-full` needs one).
    #[error("the database host {0:?} is no valid TLS server name")]
    ServerName(String),
    /// The certificate was refused, or the handshake broke off.
    #[error("TLS handshake with the database at {host} failed ({asked}): {reason}")]
    Handshake {
        /// The host connected to.
        host: String,
        /// The mode, and the CA file when one is used.
        asked: String,
        /// rustls's reason.
        reason: io::Error,
    },
}

/// The rustls settings for `settings`: certificates checked as its mode asks.
pub fn client_config(settings: &TlsSettings) -> Result<ClientConfig, TlsSettingsError> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let failed = |reason: String| TlsSettingsError::CaFile {
        path: settings.ca_file.clone().unwrap_or_default(),
        reason,
    };
    let verifier: Arc<dyn ServerCertVerifier> = match (&settings.ca_file, settings.mode) {
        (Some(path), SslMode::VerifyFull) => {
            WebPkiServerVerifier::builder_with_provider(Arc::new(roots(path)?), provider.clone())
                .build()
                .map_err(|e| failed(e.to_string()))?
        }
        (Some(path), _) => Arc::new(NameUnchecked {
            roots: Some(roots(path)?),
            provider: provider.clone(),
        }),
        (None, _) => Arc::new(NameUnchecked {
            roots: None,
            provider: provider.clone(),
        }),
    };
    Ok(ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| failed(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth())
}

/// The certificates of a PEM file.
fn roots(path: &Path) -> Result<RootCertStore, TlsSettingsError> {
    let failed = |reason: String| TlsSettingsError::CaFile {
        path: path.to_path_buf(),
        reason,
    };
    let mut store = RootCertStore::empty();
    let certs = CertificateDer::pem_file_iter(path).map_err(|e| failed(e.to_string()))?;
    for cert in certs {
        let cert = cert.map_err(|e| failed(e.to_string()))?;
        store.add(cert).map_err(|e| failed(e.to_string()))?;
    }
    if store.is_empty() {
        return Err(failed("holds no PEM certificate".into()));
    }
    Ok(store)
}

/// The verifier of the modes that do not check the server's name: `verify-ca`
/// (`roots`: the chain must lead to the CA file) and `require` without a CA file
/// (no roots: any certificate; encryption against a passive listener only, whoever
/// sits on the path can pose as the database). Handshake signatures are checked in
/// both.
#[derive(Debug)]
struct NameUnchecked {
    roots: Option<RootCertStore>,
    provider: Arc<CryptoProvider>,
}

fn tls12(
    provider: &CryptoProvider,
    message: &[u8],
    cert: &CertificateDer<'_>,
    dss: &DigitallySignedStruct,
) -> Result<HandshakeSignatureValid, rustls::Error> {
    verify_tls12_signature(
        message,
        cert,
        dss,
        &provider.signature_verification_algorithms,
    )
}

fn tls13(
    provider: &CryptoProvider,
    message: &[u8],
    cert: &CertificateDer<'_>,
    dss: &DigitallySignedStruct,
) -> Result<HandshakeSignatureValid, rustls::Error> {
    verify_tls13_signature(
        message,
        cert,
        dss,
        &provider.signature_verification_algorithms,
    )
}

impl ServerCertVerifier for NameUnchecked {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if let Some(roots) = &self.roots {
            let cert = rustls::server::ParsedCertificate::try_from(end_entity)?;
            rustls::client::verify_server_cert_signed_by_trust_anchor(
                &cert,
                roots,
                intermediates,
                now,
                self.provider.signature_verification_algorithms.all,
            )?;
        }
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        tls12(&self.provider, message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        tls13(&self.provider, message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// Makes the TLS connector of each new connection (give it to `tokio-postgres` or
/// the pool's manager).
#[derive(Clone)]
pub struct MakeRustlsConnect {
    config: Arc<ClientConfig>,
    asked: Arc<str>,
}

impl MakeRustlsConnect {
    /// A connector for `settings`.
    pub fn new(settings: &TlsSettings) -> Result<MakeRustlsConnect, TlsSettingsError> {
        let asked = match &settings.ca_file {
            Some(ca) => format!("{}, CA file {}", settings.asked(), ca.display()),
            None => settings.asked(),
        };
        Ok(MakeRustlsConnect {
            config: Arc::new(client_config(settings)?),
            asked: asked.into(),
        })
    }
}

impl<S> MakeTlsConnect<S> for MakeRustlsConnect
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = RustlsStream<S>;
    type TlsConnect = RustlsConnect;
    type Error = TlsError;

    fn make_tls_connect(&mut self, domain: &str) -> Result<RustlsConnect, TlsError> {
        // Also called for Unix sockets (an empty domain), where TLS is never used:
        // the name is checked when a handshake starts.
        Ok(RustlsConnect {
            config: self.config.clone(),
            host: domain.to_string(),
            asked: self.asked.clone(),
        })
    }
}

/// The TLS connector of one connection.
pub struct RustlsConnect {
    config: Arc<ClientConfig>,
    host: String,
    asked: Arc<str>,
}

impl<S> TlsConnect<S> for RustlsConnect
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = RustlsStream<S>;
    type Error = TlsError;
    type Future = Pin<Box<dyn Future<Output = Result<RustlsStream<S>, TlsError>> + Send>>;

    fn connect(self, stream: S) -> Self::Future {
        Box::pin(async move {
            let name = ServerName::try_from(self.host.clone())
                .map_err(|_| TlsError::ServerName(self.host.clone()))?;
            let connector = tokio_rustls::TlsConnector::from(self.config);
            let tls =
                connector
                    .connect(name, stream)
                    .await
                    .map_err(|reason| TlsError::Handshake {
                        host: self.host,
                        asked: self.asked.to_string(),
                        reason,
                    })?;
            Ok(RustlsStream(tls))
        })
    }
}

/// A TLS connection to the database.
pub struct RustlsStream<S>(tokio_rustls::client::TlsStream<S>);

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for RustlsStream<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for RustlsStream<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.0.is_write_vectored()
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> TlsStream for RustlsStream<S> {
    fn channel_binding(&self) -> ChannelBinding {
        ChannelBinding::none()
    }
}
