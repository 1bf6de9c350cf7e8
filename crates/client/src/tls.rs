//! TLS for HTTPS and WSS: rustls with the `ring` provider and the operating system's
//! certificate verifier, set up once per process.

use std::sync::{Arc, OnceLock};

use crate::error::{Error, Result};

/// Makes `ring` the process's rustls provider (reqwest picks up the process default). Another
/// provider installed first by the embedding app is kept: either one works.
pub(crate) fn install_provider() {
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(|| {
        if rustls::crypto::CryptoProvider::get_default().is_none()
            && rustls::crypto::ring::default_provider().install_default().is_err()
        {
            tracing::debug!("another rustls provider was installed concurrently; using it");
        }
    });
}

/// The client configuration for `wss://` connections.
pub(crate) fn websocket_config() -> Result<Arc<rustls::ClientConfig>> {
    static CONFIG: OnceLock<Arc<rustls::ClientConfig>> = OnceLock::new();
    if let Some(config) = CONFIG.get() {
        return Ok(config.clone());
    }
    install_provider();
    let provider = rustls::crypto::CryptoProvider::get_default()
        .cloned()
        .unwrap_or_else(|| Arc::new(rustls::crypto::ring::default_provider()));
    let verifier = rustls_platform_verifier::Verifier::new(provider.clone())
        .map_err(|e| Error::Network(format!("TLS setup failed: {e}")))?;
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Network(format!("TLS setup failed: {e}")))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    Ok(CONFIG.get_or_init(|| Arc::new(config)).clone())
}

#[cfg(test)]
mod tests {
    #[test]
    fn tls_is_ready_for_https_and_wss() {
        super::install_provider();
        assert!(rustls::crypto::CryptoProvider::get_default().is_some());
        let config = super::websocket_config().unwrap();
        assert!(!config.crypto_provider().cipher_suites.is_empty());
        let api = crate::api::Api::new("https://chat.example.org/").unwrap();
        assert_eq!(api.gateway_url(), "wss://chat.example.org/api/v1/gateway");
    }
}
