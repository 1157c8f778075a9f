//! The client's TLS configuration: a server is accepted by the fingerprint of its
//! certificate, as OpenSSH accepts a host by its key, not by a certificate authority.
//!
//! The servers of this project make their own self-signed certificate; no authority
//! vouches for it, so the client pins the [`Fingerprint`] it saw the first time
//! (or one given to it) and refuses any other afterwards. What the verifier never
//! skips is the handshake signature: a server has to sign the handshake with the
//! key of the certificate it shows, so showing a copy of the pinned certificate is
//! not enough to pass for that server.

use std::sync::{Arc, Mutex, PoisonError};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::Resumption;
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, ClientConfig, DigitallySignedStruct, SignatureScheme};

use super::{provider, Fingerprint};

/// A client configuration (TLS 1.3 only, [`provider`]'s algorithms) that accepts a
/// server by its certificate's fingerprint, and tells what the handshake saw.
///
/// Make one per connection: [`PinnedConfig::seen`] is the certificate the last
/// handshake made with [`PinnedConfig::config`] was shown.
///
/// - With an expected fingerprint, only the certificate that has it is accepted;
///   any other fails the handshake before the client sends anything of its own
///   (and [`PinnedConfig::identity_changed`] says what was expected and seen).
/// - With none (first use), any certificate is accepted, and [`PinnedConfig::seen`]
///   is the fingerprint to pin.
///
/// Either way the server must sign the handshake with the certificate's key.
/// Session resumption is off: a resumed session shows no certificate, and every
/// connection has to show the one that is pinned.
#[derive(Debug, Clone)]
pub struct PinnedConfig {
    config: Arc<ClientConfig>,
    verifier: Arc<FingerprintVerifier>,
}

impl PinnedConfig {
    /// A configuration that accepts only `expected`, or any server when `None`.
    pub fn new(expected: Option<Fingerprint>) -> Result<PinnedConfig, rustls::Error> {
        let provider = provider();
        let verifier = Arc::new(FingerprintVerifier {
            expected,
            algorithms: provider.signature_verification_algorithms,
            seen: Mutex::new(None),
        });
        let mut config = ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])?
            .dangerous()
            .with_custom_certificate_verifier(verifier.clone())
            .with_no_client_auth();
        config.resumption = Resumption::disabled();
        Ok(PinnedConfig {
            config: Arc::new(config),
            verifier,
        })
    }

    /// The configuration to give `rustls::ClientConnection::new`.
    pub fn config(&self) -> Arc<ClientConfig> {
        self.config.clone()
    }

    /// The fingerprint this configuration accepts, if it was given one.
    pub fn expected(&self) -> Option<Fingerprint> {
        self.verifier.expected
    }

    /// The fingerprint of the certificate the server showed, once it showed one
    /// (accepted or not).
    pub fn seen(&self) -> Option<Fingerprint> {
        self.verifier.seen()
    }

    /// `(expected, seen)` when the server showed a certificate other than the
    /// expected one.
    pub fn identity_changed(&self) -> Option<(Fingerprint, Fingerprint)> {
        match (self.verifier.expected, self.verifier.seen()) {
            (Some(expected), Some(seen)) if expected != seen => Some((expected, seen)),
            _ => None,
        }
    }
}

/// Accepts the end-entity certificate by its fingerprint and checks the handshake
/// signature with its key. Names, dates and issuers are not looked at: the pin is
/// the identity, as a host key is for OpenSSH.
#[derive(Debug)]
struct FingerprintVerifier {
    expected: Option<Fingerprint>,
    algorithms: WebPkiSupportedAlgorithms,
    seen: Mutex<Option<Fingerprint>>,
}

impl FingerprintVerifier {
    fn seen(&self) -> Option<Fingerprint> {
        // The value is a plain copy: a panic elsewhere cannot leave it half written.
        *self.seen.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl ServerCertVerifier for FingerprintVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let seen = Fingerprint::of_certificate(end_entity.as_ref());
        *self.seen.lock().unwrap_or_else(PoisonError::into_inner) = Some(seen);
        match self.expected {
            Some(expected) if expected != seen => Err(rustls::Error::InvalidCertificate(
                CertificateError::ApplicationVerificationFailure,
            )),
            _ => Ok(ServerCertVerified::assertion()),
        }
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        // The configuration offers TLS 1.3 alone; a TLS 1.2 handshake never gets here.
        Err(rustls::Error::PeerIncompatible(
            rustls::PeerIncompatible::ServerTlsVersionIsDisabledByOurConfig,
        ))
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}
