//! The certificate authorities the process trusts, read once at init and handed to both HTTP
//! stacks: reqwest (the Databricks account API and the CloudFormation response) and the AWS
//! SDK's client (EC2, Secrets Manager, CloudFormation).
//!
//! Left to themselves, each stack loads the platform's trust store on its own, and
//! `rustls-native-certs` reads both the CA bundle file and every file of the certificate
//! directory (about 300 files on Debian), so a cold start read and parsed the same roots up to
//! four times. Here the bundle file OpenSSL would use is read once (`SSL_CERT_FILE`, else the
//! distribution's bundle as `openssl-probe` finds it: on Amazon Linux 2023
//! `/etc/pki/tls/certs/ca-bundle.crt`), checked, and given to both. When `SSL_CERT_DIR` is set,
//! or no usable bundle exists, nothing is decided here and both stacks load the platform store
//! as before. Knows nothing of what the clients are used for.

use std::path::{Path, PathBuf};

use aws_smithy_http_client::proxy::ProxyConfig;
use aws_smithy_http_client::tls::rustls_provider::CryptoMode;
use aws_smithy_http_client::tls::{Provider, TlsContext, TrustStore};
use aws_smithy_http_client::{Builder, ConnectorBuilder};
use aws_smithy_runtime_api::client::http::SharedHttpClient;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

/// The bundle file to share: none when `SSL_CERT_DIR` names a directory (its certificates need
/// not be in any bundle, so the platform's loading, which reads it, decides); exactly
/// `SSL_CERT_FILE` when it is set, even if it does not exist (the platform's loading then fails
/// closed, instead of a typo widening trust to the system bundle); else the distribution's
/// bundle as `probe` finds it.
fn bundle_to_read(
    cert_dir: Option<&std::ffi::OsStr>,
    cert_file: Option<&std::ffi::OsStr>,
    probe: impl FnOnce() -> Option<PathBuf>,
) -> Option<PathBuf> {
    match (cert_dir, cert_file) {
        (Some(dir), _) if !dir.is_empty() => None,
        (_, Some(file)) if !file.is_empty() => Some(PathBuf::from(file)),
        _ => probe(),
    }
}

/// The roots of one CA bundle, every certificate in it usable as a trust anchor.
#[derive(Clone)]
pub struct TrustRoots {
    source: PathBuf,
    pem: Vec<u8>,
    count: usize,
}

impl std::fmt::Debug for TrustRoots {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TrustRoots")
            .field("source", &self.source)
            .field("count", &self.count)
            .finish()
    }
}

impl TrustRoots {
    /// The bundle OpenSSL would use, unless `SSL_CERT_DIR` asks for a directory. `None` (and a
    /// log line saying why) when the platform's own loading should be used instead.
    pub fn from_system() -> Option<Self> {
        let cert_dir = std::env::var_os("SSL_CERT_DIR");
        let cert_file = std::env::var_os("SSL_CERT_FILE");
        let Some(source) = bundle_to_read(cert_dir.as_deref(), cert_file.as_deref(), || {
            openssl_probe::probe().cert_file
        }) else {
            tracing::debug!(
                "no CA bundle to share (SSL_CERT_DIR is set, or none was found); both HTTP clients load the platform's trust store"
            );
            return None;
        };
        match Self::from_file(&source) {
            Ok(roots) => Some(roots),
            Err(why) => {
                tracing::warn!(bundle = %source.display(), %why, "the CA bundle cannot be used as it is; both HTTP clients load the platform's trust store");
                None
            }
        }
    }

    /// Reads `path` as a PEM bundle. Every certificate in it must be a usable trust anchor: the
    /// AWS SDK's client would panic on one that is not.
    pub fn from_file(path: &Path) -> Result<Self, String> {
        let pem = std::fs::read(path).map_err(|e| format!("cannot be read: {e}"))?;
        Self::from_pem(path.to_owned(), pem)
    }

    fn from_pem(source: PathBuf, pem: Vec<u8>) -> Result<Self, String> {
        let ders = CertificateDer::pem_slice_iter(&pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("is not a PEM bundle: {e}"))?;
        let mut store = rustls::RootCertStore::empty();
        let (added, ignored) = store.add_parsable_certificates(ders);
        if ignored > 0 {
            return Err(format!(
                "{ignored} of its certificates are not usable roots"
            ));
        }
        if added == 0 {
            return Err("holds no certificate".to_owned());
        }
        Ok(Self {
            source,
            pem,
            count: added,
        })
    }

    /// Where the roots come from.
    pub fn source(&self) -> &Path {
        &self.source
    }

    /// How many roots there are.
    pub fn count(&self) -> usize {
        self.count
    }

    /// The roots for reqwest's `tls_certs_only`.
    pub fn reqwest_certificates(&self) -> Result<Vec<reqwest::Certificate>, reqwest::Error> {
        reqwest::Certificate::from_pem_bundle(&self.pem)
    }

    /// The AWS SDK's default HTTPS client (rustls with aws-lc, proxies from the environment),
    /// trusting exactly these roots. Connectors are built on first use, as by default.
    pub fn aws_http_client(&self) -> SharedHttpClient {
        let context = TlsContext::builder()
            .with_trust_store(TrustStore::empty().with_pem_certificate(self.pem.clone()))
            .build()
            // Only a TLS provider without support for custom roots refuses; rustls has it.
            .unwrap_or_default();
        // The same connector the SDK builds by default (aws-smithy-runtime's
        // `default_https_client`), with this trust store instead of the native one.
        Builder::new().build_with_connector_fn(move |settings, components| {
            let mut connector = ConnectorBuilder::default()
                .tls_provider(Provider::Rustls(CryptoMode::AwsLc))
                .tls_context(context.clone());
            connector.set_connector_settings(settings.cloned());
            if let Some(components) = components {
                connector.set_sleep_impl(components.sleep_impl());
            }
            connector.set_proxy_config(Some(ProxyConfig::from_env()));
            connector.build()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    use crate::databricks::{DatabricksHttp, HttpSettings};

    /// A private CA that no system trusts, and a `localhost` / 127.0.0.1 server certificate it
    /// signed (both valid until 2126; the CA's key was thrown away).
    const TEST_CA: &str = include_str!("trust_testdata/ca.pem");
    const SERVER_CERT: &str = include_str!("trust_testdata/server.pem");
    const SERVER_KEY: &str = include_str!("trust_testdata/server.key");

    const EMPTY_DESCRIBE: &str = r#"<DescribeVpcEndpointsResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/"><requestId>1</requestId><vpcEndpointSet/></DescribeVpcEndpointsResponse>"#;

    fn roots(pem: &str) -> Result<TrustRoots, String> {
        TrustRoots::from_pem(PathBuf::from("test-bundle.pem"), pem.as_bytes().to_vec())
    }

    /// An HTTPS server on 127.0.0.1 presenting the test certificate; answers every request with
    /// an empty EC2 DescribeVpcEndpoints result. Returns its port.
    async fn tls_server() -> u16 {
        let certs = CertificateDer::pem_slice_iter(SERVER_CERT.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .unwrap();
        let key = rustls::pki_types::PrivateKeyDer::from_pem_slice(SERVER_KEY.as_bytes()).unwrap();
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    // A client that does not trust the certificate ends the handshake.
                    let Ok(mut tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let mut request = Vec::new();
                    let mut chunk = [0u8; 4096];
                    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                        match tls.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => request.extend_from_slice(&chunk[..n]),
                        }
                    }
                    let answer = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: text/xml\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{EMPTY_DESCRIBE}",
                        EMPTY_DESCRIBE.len()
                    );
                    let _ = tls.write_all(answer.as_bytes()).await;
                    let _ = tls.shutdown().await;
                });
            }
        });
        port
    }

    fn ec2_client(roots: &TrustRoots, port: u16) -> aws_sdk_ec2::Client {
        let config = aws_sdk_ec2::Config::builder()
            .behavior_version(aws_sdk_ec2::config::BehaviorVersion::latest())
            .region(aws_sdk_ec2::config::Region::new("us-east-1"))
            .credentials_provider(aws_sdk_ec2::config::Credentials::new(
                "AKIDTEST", "secret", None, None, "test",
            ))
            .retry_config(aws_sdk_ec2::config::retry::RetryConfig::disabled())
            .http_client(roots.aws_http_client())
            .endpoint_url(format!("https://localhost:{port}"))
            .build();
        aws_sdk_ec2::Client::from_conf(config)
    }

    async fn databricks_get(roots: &TrustRoots, port: u16) -> Result<u16, reqwest::Error> {
        let http =
            DatabricksHttp::with_roots(HttpSettings::default(), roots.reqwest_certificates()?)
                .unwrap();
        let answer = http
            .client()
            .get(format!("https://localhost:{port}/"))
            .send()
            .await?;
        Ok(answer.status().as_u16())
    }

    #[tokio::test]
    async fn both_http_stacks_trust_exactly_the_bundle_they_are_given() {
        let port = tls_server().await;
        let private = roots(TEST_CA).unwrap();
        assert_eq!(private.count(), 1);
        assert_eq!(databricks_get(&private, port).await.unwrap(), 200);
        let described = ec2_client(&private, port)
            .describe_vpc_endpoints()
            .send()
            .await
            .unwrap();
        assert!(described.vpc_endpoints().is_empty());

        // The system's roots do not include the private CA: both refuse the server.
        let bundle = openssl_probe::probe()
            .cert_file
            .expect("this machine has a CA bundle");
        let system = TrustRoots::from_file(&bundle).unwrap();
        assert!(system.count() > 50, "{system:?}");
        assert!(databricks_get(&system, port).await.is_err());
        let refused = ec2_client(&system, port)
            .describe_vpc_endpoints()
            .send()
            .await
            .unwrap_err();
        assert!(
            matches!(refused, aws_sdk_ec2::error::SdkError::DispatchFailure(_)),
            "{refused:?}"
        );
    }

    #[test]
    fn the_environment_decides_which_bundle_or_leaves_it_to_the_platform() {
        let found = || Some(PathBuf::from("/etc/pki/tls/certs/ca-bundle.crt"));
        let os = |s: &'static str| Some(std::ffi::OsStr::new(s));
        assert_eq!(bundle_to_read(None, None, found), found());
        assert_eq!(bundle_to_read(os(""), os(""), found), found());
        assert_eq!(bundle_to_read(os("/etc/ssl/certs"), None, found), None);
        assert_eq!(
            bundle_to_read(os("/etc/ssl/certs"), os("/opt/ca.pem"), found),
            None
        );
        // Exactly the file asked for, even a missing one: never the system bundle instead.
        assert_eq!(
            bundle_to_read(None, os("/opt/missing.pem"), found),
            Some(PathBuf::from("/opt/missing.pem"))
        );
        assert_eq!(bundle_to_read(None, None, || None), None);
    }

    #[test]
    fn a_bundle_must_hold_only_usable_roots() {
        assert!(roots("").unwrap_err().contains("no certificate"));
        assert!(
            roots("not a bundle at all")
                .unwrap_err()
                .contains("no certificate")
        );
        let broken = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
        let mixed = format!("{TEST_CA}{broken}");
        assert!(
            roots(&mixed).unwrap_err().contains("1 of its certificates"),
            "{mixed}"
        );
        let torn = &TEST_CA[..TEST_CA.len() - 30];
        assert!(roots(torn).unwrap_err().contains("not a PEM bundle"));
        assert!(
            TrustRoots::from_file(Path::new("/nonexistent/bundle.pem"))
                .unwrap_err()
                .contains("cannot be read")
        );
    }
}
