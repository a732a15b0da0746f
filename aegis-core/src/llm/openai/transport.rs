//! The HTTP transport of the provider clients: hyper's pooled client, TLS by rustls with
//! the Mozilla roots (webpki-roots), HTTP/2 where a provider offers it over ALPN, and the
//! environment's proxy settings (`HTTPS_PROXY`, `HTTP_PROXY`, `ALL_PROXY`, `NO_PROXY`).
//!
//! hyper directly, not reqwest (decision 43): on the gateway's path reqwest's own layers
//! (its redirect policy, which parses the URL again on every request, its request
//! builder and pending future, its proxy matcher per request) were a tenth of the
//! process's CPU. Here a provider's proxy is decided once, when its client is made, and a
//! request is one `http::Request` handed to the pool.
//!
//! A proxied `https://` provider is reached through an HTTP `CONNECT` tunnel; a proxied
//! `http://` one gets its requests forwarded, written in absolute form (as reqwest did, and
//! as proxies expect: many allow `CONNECT` to port 443 only). The proxy is reached over
//! TLS when its URL is `https://`.

use std::{
    error::Error as StdError,
    fmt, io,
    path::Path,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::Duration,
};

use bytes::Bytes;
use http::{HeaderValue, Request, Response, Uri, header::PROXY_AUTHORIZATION};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::{
    client::{
        legacy::{
            Client, ResponseFuture,
            connect::{HttpConnector, proxy::Tunnel},
        },
        proxy::matcher::Matcher,
    },
    rt::{TokioExecutor, TokioTimer},
};
use rustls::pki_types::{CertificateDer, pem::PemObject};

use super::forward::Forward;

type DirectClient = Client<Bounded<HttpsConnector<HttpConnector>>, Full<Bytes>>;
type TunnelClient = Client<Bounded<HttpsConnector<Tunnel<HttpsConnector<HttpConnector>>>>, Full<Bytes>>;
type ForwardClient = Client<Bounded<Forward>, Full<Bytes>>;
type BoxError = Box<dyn StdError + Send + Sync>;

/// Makes each provider's [`Transport`]. Clones share the direct connection pool.
#[derive(Clone)]
pub struct ProviderHttp {
    /// The TLS settings every client is made with, and the direct client; or why TLS could
    /// not be set up.
    clients: Result<(rustls::ClientConfig, DirectClient), Arc<str>>,
    proxies: Arc<Matcher>,
    connect_timeout: Duration,
}

impl fmt::Debug for ProviderHttp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProviderHttp")
            .field("proxies", &self.proxies)
            .field("connect_timeout", &self.connect_timeout)
            .finish_non_exhaustive()
    }
}

impl ProviderHttp {
    /// Connects within `connect_timeout`, through the proxies the environment names.
    pub fn new(connect_timeout: Duration) -> Self {
        Self::with_proxies(connect_timeout, Matcher::from_env())
    }

    /// Connects within `connect_timeout`, through `proxies` (e.g.
    /// `Matcher::builder().all("http://proxy:3128").build()`).
    pub fn with_proxies(connect_timeout: Duration, proxies: Matcher) -> Self {
        let clients = tls_config(&[]).map(|tls| {
            let direct = pooled(tls.clone(), tcp(), connect_timeout);
            (tls, direct)
        });
        Self { clients: clients.map_err(Arc::from), proxies: Arc::new(proxies), connect_timeout }
    }

    /// The same proxies and connect bound, trusting the CA certificates of the PEM file at
    /// `path` besides the public roots (a provider on a private network, whose certificate
    /// an internal CA signed), with a connection pool of its own. An unreadable file, or
    /// one without a certificate, is the error.
    pub fn trusting(&self, path: &Path) -> Result<Self, String> {
        let shown = path.display();
        let pem = std::fs::read(path).map_err(|e| format!("cannot read the CA file {shown}: {e}"))?;
        let certificates = CertificateDer::pem_slice_iter(&pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("the CA file {shown} cannot be read as PEM: {e}"))?;
        if certificates.is_empty() {
            return Err(format!("the CA file {shown} holds no PEM certificate"));
        }
        let tls = tls_config(&certificates).map_err(|e| format!("the CA file {shown}: {e}"))?;
        let direct = pooled(tls.clone(), tcp(), self.connect_timeout);
        Ok(Self { clients: Ok((tls, direct)), proxies: self.proxies.clone(), connect_timeout: self.connect_timeout })
    }

    /// The transport to `base`, a provider's base URL.
    pub fn transport(&self, base: &Uri) -> Transport {
        let (tls, direct) = match &self.clients {
            Ok((tls, direct)) => (tls, direct),
            Err(e) => return Transport(Kind::Unusable(e.clone())),
        };
        let Some(proxy) = self.proxies.intercept(base) else {
            return Transport(Kind::Direct(direct.clone()));
        };
        if !matches!(proxy.uri().scheme_str(), Some("http" | "https")) {
            let message =
                format!("the proxy for {base} is {}: only http:// and https:// proxies are supported", proxy.uri());
            return Transport(Kind::Unusable(Arc::from(message)));
        }
        let auth = proxy.basic_auth().map(|auth| {
            let mut auth = auth.clone();
            auth.set_sensitive(true);
            auth
        });
        if base.scheme_str() == Some("http") {
            let forward = Forward { proxy: proxy.uri().clone(), connector: to_proxy(tls.clone()) };
            let client = builder().build(Bounded { inner: forward, timeout: self.connect_timeout });
            return Transport(Kind::Forward { client, auth, proxy: proxy.uri().clone() });
        }
        let mut tunnel = Tunnel::new(proxy.uri().clone(), to_proxy(tls.clone()));
        if let Some(auth) = auth {
            tunnel = tunnel.with_auth(auth);
        }
        Transport(Kind::Tunnel(pooled(tls.clone(), tunnel, self.connect_timeout)))
    }
}

/// TLS by rustls (ring) trusting the Mozilla roots and `extra`.
fn tls_config(extra: &[CertificateDer<'static>]) -> Result<rustls::ClientConfig, String> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    for (n, certificate) in extra.iter().enumerate() {
        roots
            .add(certificate.clone())
            .map_err(|e| format!("certificate {} of the file cannot be a trust anchor: {e}", n + 1))?;
    }
    rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map(|config| config.with_root_certificates(roots).with_no_client_auth())
        .map_err(|e| format!("TLS could not be set up: {e}"))
}

/// A connector to a proxy: TLS to an `https://` one, HTTP/1.1 only (a tunnel's `CONNECT`,
/// forwarded requests).
fn to_proxy(tls: rustls::ClientConfig) -> HttpsConnector<HttpConnector> {
    HttpsConnectorBuilder::new().with_tls_config(tls).https_or_http().enable_http1().wrap_connector(tcp())
}

fn tcp() -> HttpConnector {
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_nodelay(true);
    http
}

fn pooled<C>(
    tls: rustls::ClientConfig,
    connector: C,
    connect_timeout: Duration,
) -> Client<Bounded<HttpsConnector<C>>, Full<Bytes>>
where
    Bounded<HttpsConnector<C>>: hyper_util::client::legacy::connect::Connect + Clone + Send + Sync + 'static,
{
    let https = HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .enable_http2()
        .wrap_connector(connector);
    builder().build(Bounded { inner: https, timeout: connect_timeout })
}

/// The settings every pool is made with.
fn builder() -> hyper_util::client::legacy::Builder {
    let mut builder = Client::builder(TokioExecutor::new());
    builder.pool_idle_timeout(Duration::from_secs(90)).pool_timer(TokioTimer::new()).timer(TokioTimer::new());
    builder
}

/// A connector whose whole connect — TCP, a proxy's `CONNECT`, the TLS handshake — ends
/// within `timeout`.
#[derive(Clone, Debug)]
struct Bounded<C> {
    inner: C,
    timeout: Duration,
}

impl<C> tower_service::Service<Uri> for Bounded<C>
where
    C: tower_service::Service<Uri>,
    C::Future: Send + 'static,
    C::Error: Into<BoxError>,
{
    type Response = C::Response;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<C::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, dst: Uri) -> Self::Future {
        let timeout = self.timeout;
        let connecting = self.inner.call(dst);
        Box::pin(async move {
            match tokio::time::timeout(timeout, connecting).await {
                Ok(connected) => connected.map_err(Into::into),
                Err(_) => {
                    Err(io::Error::new(io::ErrorKind::TimedOut, format!("no connection within {timeout:?}")).into())
                }
            }
        })
    }
}

/// One provider's way out: direct, through a proxy (tunnelled or forwarded), or an error
/// every call reports.
#[derive(Clone, Debug)]
pub struct Transport(Kind);

#[derive(Clone, Debug)]
enum Kind {
    Direct(DirectClient),
    Tunnel(TunnelClient),
    /// With the proxy's credentials, sent on every request, and the proxy (without them).
    Forward {
        client: ForwardClient,
        auth: Option<HeaderValue>,
        proxy: Uri,
    },
    Unusable(Arc<str>),
}

impl Transport {
    /// Sends the request `build` makes; a failure before a response is the error's
    /// description, with its causes. A request an HTTP/2 server refused unprocessed (a
    /// graceful `GOAWAY`, `REFUSED_STREAM`) is built and sent again, up to twice, as reqwest
    /// did.
    pub async fn send(&self, build: impl Fn() -> Request<Full<Bytes>>) -> Result<Response<Incoming>, String> {
        let mut refused = 0;
        loop {
            let pending: ResponseFuture = match &self.0 {
                Kind::Direct(client) => client.request(build()),
                Kind::Tunnel(client) => client.request(build()),
                Kind::Forward { client, auth, .. } => {
                    let mut request = build();
                    if let Some(auth) = auth {
                        request.headers_mut().insert(PROXY_AUTHORIZATION, auth.clone());
                    }
                    client.request(request)
                }
                Kind::Unusable(message) => return Err(message.to_string()),
            };
            match pending.await {
                // A forwarding proxy answers for itself: that is no answer of the provider's.
                Ok(response)
                    if let Kind::Forward { proxy, .. } = &self.0
                        && response.status() == http::StatusCode::PROXY_AUTHENTICATION_REQUIRED =>
                {
                    return Err(format!(
                        "the proxy {proxy} refused the request: 407 Proxy Authentication Required \
                         (the credentials in its URL are missing or wrong)"
                    ));
                }
                Ok(response) => return Ok(response),
                Err(e) if refused < 2 && refused_unprocessed(&e) => refused += 1,
                Err(e) => return Err(describe(&e)),
            }
        }
    }
}

/// Whether an HTTP/2 server said it did not process the request: a graceful shutdown
/// (`GOAWAY` with `NO_ERROR`) or `REFUSED_STREAM` (RFC 9113, section 8.7), so that sending
/// it again on a new stream or connection cannot run it twice.
fn refused_unprocessed(err: &(dyn StdError + 'static)) -> bool {
    let mut source = Some(err);
    while let Some(cause) = source {
        if let Some(h2) = cause.downcast_ref::<h2::Error>() {
            return h2.is_remote()
                && ((h2.is_go_away() && h2.reason() == Some(h2::Reason::NO_ERROR))
                    || (h2.is_reset() && h2.reason() == Some(h2::Reason::REFUSED_STREAM)));
        }
        source = cause.source();
    }
    false
}

/// An error and its causes, outermost first ("client error (Connect): tcp connect error: …").
pub fn describe(err: &dyn StdError) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
pub(super) mod tests {
    use std::sync::Mutex;

    use tokio::{
        io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt},
        net::{TcpListener, TcpStream},
    };

    use super::*;

    /// Reads up to the end of a request or response head.
    async fn head<S: AsyncRead + Unpin>(stream: &mut S) -> String {
        let mut bytes = Vec::new();
        let mut byte = [0u8; 1];
        while !bytes.ends_with(b"\r\n\r\n") && stream.read(&mut byte).await.unwrap_or(0) == 1 {
            bytes.push(byte[0]);
        }
        String::from_utf8_lossy(&bytes).into_owned()
    }

    const OK: &str = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}";

    /// Answers every request on `stream` with `reply`, a whole HTTP/1.1 response.
    async fn answer<S: AsyncRead + AsyncWrite + Unpin>(mut stream: S, reply: &'static str) {
        loop {
            let request = head(&mut stream).await;
            if request.is_empty() {
                break;
            }
            let mut body = vec![0u8; content_length(&request)];
            let _ = stream.read_exact(&mut body).await;
            if stream.write_all(reply.as_bytes()).await.is_err() {
                break;
            }
        }
    }

    /// An upstream answering every request with `{}`.
    async fn upstream() -> u16 {
        upstream_replying(OK).await
    }

    /// An upstream answering every request with `reply`, a whole HTTP/1.1 response, as many
    /// on one connection as it is sent.
    pub(in crate::llm::openai) async fn upstream_replying(reply: &'static str) -> u16 {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap_or_else(|e| panic!("bind: {e}"));
        let port = listener.local_addr().map(|a| a.port()).unwrap_or_default();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(answer(stream, reply));
            }
        });
        port
    }

    /// The test CA, which signed [`tls_acceptor`]'s certificate (for `localhost` and
    /// 127.0.0.1; `testdata/README.md` says how they were made).
    fn test_ca() -> std::path::PathBuf {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/llm/openai/testdata/ca.pem")
    }

    /// TLS (HTTP/1.1) with the test certificate.
    fn tls_acceptor() -> tokio_rustls::TlsAcceptor {
        use rustls::pki_types::PrivateKeyDer;
        let certificates = CertificateDer::pem_slice_iter(include_bytes!("testdata/server.pem"))
            .collect::<Result<Vec<_>, _>>()
            .unwrap();
        let key = PrivateKeyDer::from_pem_slice(include_bytes!("testdata/server.key")).unwrap();
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(certificates, key)
            .unwrap();
        tokio_rustls::TlsAcceptor::from(Arc::new(config))
    }

    /// An HTTPS upstream answering every request with `{}`.
    async fn tls_upstream() -> u16 {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let acceptor = tls_acceptor();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    if let Ok(tls) = acceptor.accept(stream).await {
                        answer(tls, OK).await;
                    }
                });
            }
        });
        port
    }

    /// The heads a proxy double was sent, each with the number of its connection.
    type Seen = Arc<Mutex<Vec<(usize, String)>>>;

    /// An HTTP proxy (over TLS when `tls`) that records the head of each request it is
    /// sent: it tunnels a `CONNECT`, and forwards a request in absolute form in origin form.
    async fn proxy(seen: Seen, tls: bool) -> u16 {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap_or_else(|e| panic!("bind: {e}"));
        let port = listener.local_addr().map(|a| a.port()).unwrap_or_default();
        let acceptor = tls_acceptor();
        tokio::spawn(async move {
            let mut connection = 0;
            while let Ok((client, _)) = listener.accept().await {
                let (seen, acceptor) = (seen.clone(), acceptor.clone());
                tokio::spawn(async move {
                    if !tls {
                        relay(client, seen, connection).await;
                    } else if let Ok(client) = acceptor.accept(client).await {
                        relay(client, seen, connection).await;
                    }
                });
                connection += 1;
            }
        });
        port
    }

    /// The proxy's side of one client connection: a tunnel after a `CONNECT`, else each
    /// request forwarded (and its head recorded) and its answer passed back.
    async fn relay<S: AsyncRead + AsyncWrite + Unpin>(mut client: S, seen: Seen, connection: usize) {
        let mut server: Option<TcpStream> = None;
        loop {
            let request = head(&mut client).await;
            if request.is_empty() {
                return;
            }
            seen.lock().unwrap_or_else(|e| e.into_inner()).push((connection, request.clone()));
            let line = request.lines().next().unwrap_or_default().to_owned();
            let mut parts = line.split(' ');
            let (method, target) = (parts.next().unwrap_or_default(), parts.next().unwrap_or_default());
            if method == "CONNECT" {
                let Ok(mut server) = TcpStream::connect(target).await else { return };
                let _ = client.write_all(b"HTTP/1.1 200 Connection Established\r\n\r\n").await;
                let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                return;
            }
            let uri: Uri = target.parse().unwrap_or_default();
            let origin = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
            let rest = request.split_once("\r\n").map(|(_, rest)| rest).unwrap_or_default();
            if server.is_none() {
                let address = uri.authority().map(|a| a.to_string()).unwrap_or_default();
                server = TcpStream::connect(address).await.ok();
            }
            let Some(upstream) = server.as_mut() else { return };
            let mut body = vec![0u8; content_length(&request)];
            let _ = client.read_exact(&mut body).await;
            let forwarded = [format!("{method} {origin} HTTP/1.1\r\n{rest}").as_bytes(), &body].concat();
            if upstream.write_all(&forwarded).await.is_err() {
                return;
            }
            let answer = head(upstream).await;
            let mut answer_body = vec![0u8; content_length(&answer)];
            let _ = upstream.read_exact(&mut answer_body).await;
            if client.write_all(&[answer.as_bytes(), &answer_body].concat()).await.is_err() {
                return;
            }
        }
    }

    /// The `content-length` of a head (0 without one).
    fn content_length(head: &str) -> usize {
        head.lines()
            .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().to_owned()))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    }

    /// The proxies of a proxy at `port` with the credentials `user:secret`, reached over
    /// TLS when `tls`.
    fn proxies(port: u16, tls: bool) -> Matcher {
        let url = if tls {
            format!("https://user:secret@localhost:{port}")
        } else {
            format!("http://user:secret@127.0.0.1:{port}")
        };
        Matcher::builder().all(url).build()
    }

    /// `Basic base64(user:secret)`.
    const CREDENTIALS: &str = "proxy-authorization: Basic dXNlcjpzZWNyZXQ=";

    /// A `POST` of `{}` to `uri`, as often as it is asked for.
    fn post_to(uri: String) -> impl Fn() -> Request<Full<Bytes>> {
        let uri: Uri = uri.parse().unwrap();
        move || {
            let mut request = Request::new(Full::new(Bytes::from_static(b"{}")));
            *request.method_mut() = http::Method::POST;
            *request.uri_mut() = uri.clone();
            request
        }
    }

    /// A request to `http://127.0.0.1:{port}`.
    fn post(port: u16) -> impl Fn() -> Request<Full<Bytes>> {
        post_to(format!("http://127.0.0.1:{port}/v1/chat/completions"))
    }

    /// A request to `https://localhost:{port}`.
    fn post_https(port: u16) -> impl Fn() -> Request<Full<Bytes>> {
        post_to(format!("https://localhost:{port}/v1/chat/completions"))
    }

    /// Provider calls through a proxy double (over TLS when `tls`) with the credentials
    /// `user:secret`, trusting the test CA; and what the proxy is sent.
    async fn through_proxy(tls: bool) -> (ProviderHttp, Seen) {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let http = ProviderHttp::with_proxies(Duration::from_secs(5), proxies(proxy(seen.clone(), tls).await, tls));
        (http.trusting(&test_ca()).unwrap(), seen)
    }

    /// Through an `http://` proxy and an `https://` one (TLS to the proxy, and TLS to the
    /// provider inside it).
    #[tokio::test]
    async fn a_proxied_https_provider_is_reached_through_a_connect_tunnel() {
        for tls in [false, true] {
            let upstream = tls_upstream().await;
            let (http, seen) = through_proxy(tls).await;
            let request = post_https(upstream);
            let response = http.transport(request().uri()).send(request).await.unwrap();
            assert_eq!(response.status(), 200, "proxy over TLS: {tls}");
            let seen = seen.lock().unwrap_or_else(|e| e.into_inner()).clone();
            assert_eq!(seen.len(), 1, "{seen:?}");
            assert!(seen[0].1.starts_with(&format!("CONNECT localhost:{upstream} HTTP/1.1\r\n")), "{seen:?}");
            assert!(seen[0].1.to_ascii_lowercase().contains(&CREDENTIALS.to_ascii_lowercase()), "{seen:?}");
        }
    }

    #[tokio::test]
    async fn a_server_with_a_private_ca_s_certificate_is_trusted_only_with_that_ca() {
        let upstream = tls_upstream().await;
        let http = ProviderHttp::with_proxies(Duration::from_secs(5), Matcher::builder().build());
        let request = post_https(upstream);
        let err = http.transport(request().uri()).send(&request).await.err().unwrap_or_default();
        assert!(err.contains("certificate"), "the public roots do not know the test CA: {err}");
        let trusting = http.trusting(&test_ca()).unwrap();
        let response = trusting.transport(request().uri()).send(&request).await.unwrap();
        assert_eq!(response.status(), 200);
        let body = http_body_util::BodyExt::collect(response.into_body()).await.map(|b| b.to_bytes());
        assert_eq!(body.ok().as_deref(), Some(&b"{}"[..]));
        let err = http.transport(request().uri()).send(&request).await.err().unwrap_or_default();
        assert!(err.contains("certificate"), "the trust stays with the client that has the CA file: {err}");
    }

    #[test]
    fn a_ca_file_that_cannot_be_used_is_refused_with_the_reason() {
        let http = ProviderHttp::with_proxies(Duration::from_secs(5), Matcher::builder().build());
        let missing = std::env::temp_dir().join(format!("aegis-no-ca-{}.pem", std::process::id()));
        let err = http.trusting(&missing).err().unwrap_or_default();
        assert!(err.contains("cannot read the CA file") && err.contains("aegis-no-ca"), "{err}");
        let key = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/llm/openai/testdata/server.key");
        let err = http.trusting(&key).err().unwrap_or_default();
        assert!(err.contains("holds no PEM certificate"), "a key is not a certificate: {err}");
    }

    /// Through an `http://` proxy and an `https://` one.
    #[tokio::test]
    async fn a_proxied_plain_http_provider_has_its_requests_forwarded_in_absolute_form() {
        for tls in [false, true] {
            let upstream = upstream().await;
            let (http, seen) = through_proxy(tls).await;
            let request = post(upstream);
            let transport = http.transport(request().uri());
            for _ in 0..2 {
                let response = transport.send(&request).await.unwrap_or_else(|e| panic!("send: {e}"));
                assert_eq!(response.status(), 200, "proxy over TLS: {tls}");
                let body = http_body_util::BodyExt::collect(response.into_body()).await.map(|b| b.to_bytes());
                assert_eq!(body.ok().as_deref(), Some(&b"{}"[..]));
            }
            let seen = seen.lock().unwrap_or_else(|e| e.into_inner()).clone();
            assert_eq!(seen.len(), 2, "{seen:?}");
            let line = format!("POST http://127.0.0.1:{upstream}/v1/chat/completions HTTP/1.1\r\n");
            for (connection, head) in &seen {
                assert_eq!(*connection, 0, "the connection to the proxy is reused: {seen:?}");
                assert!(head.starts_with(&line), "{seen:?}");
                assert!(
                    head.to_ascii_lowercase().contains(&CREDENTIALS.to_ascii_lowercase()),
                    "each request: {seen:?}"
                );
            }
        }
    }

    #[tokio::test]
    async fn a_forwarding_proxy_s_refusal_is_an_error_naming_the_proxy_not_the_provider_s_answer() {
        let proxy = upstream_replying("HTTP/1.1 407 Proxy Authentication Required\r\ncontent-length: 0\r\n\r\n").await;
        let proxies = Matcher::builder().all(format!("http://127.0.0.1:{proxy}")).build();
        let http = ProviderHttp::with_proxies(Duration::from_secs(5), proxies);
        let request = post(9);
        let err = http.transport(request().uri()).send(request).await.err().unwrap_or_default();
        assert!(err.contains(&format!("the proxy http://127.0.0.1:{proxy}/ refused")) && err.contains("407"), "{err}");
        // A proxy that cannot be reached is named as such.
        let closed = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = closed.local_addr().unwrap().port();
        drop(closed);
        let proxies = Matcher::builder().all(format!("http://127.0.0.1:{port}")).build();
        let http = ProviderHttp::with_proxies(Duration::from_secs(5), proxies);
        let request = post(9);
        let err = http.transport(request().uri()).send(request).await.err().unwrap_or_default();
        assert!(err.contains(&format!("cannot reach the proxy http://127.0.0.1:{port}/")), "{err}");
    }

    #[tokio::test]
    async fn without_a_proxy_the_provider_is_reached_directly_and_a_refused_one_is_described() {
        let upstream = upstream().await;
        let http = ProviderHttp::with_proxies(Duration::from_secs(5), Matcher::builder().build());
        let request = post(upstream);
        let response = http.transport(request().uri()).send(request).await.unwrap_or_else(|e| panic!("send: {e}"));
        assert_eq!(response.status(), 200);

        let closed = TcpListener::bind("127.0.0.1:0").await.unwrap_or_else(|e| panic!("bind: {e}"));
        let port = closed.local_addr().map(|a| a.port()).unwrap_or_default();
        drop(closed);
        let request = post(port);
        let err = http.transport(request().uri()).send(request).await.err().unwrap_or_default();
        assert!(err.contains("onnect"), "{err}");
    }

    #[tokio::test]
    async fn a_tls_handshake_that_never_ends_is_bounded_by_the_connect_timeout() {
        // A server that accepts connections and never says a word.
        let silent = TcpListener::bind("127.0.0.1:0").await.unwrap_or_else(|e| panic!("bind: {e}"));
        let port = silent.local_addr().map(|a| a.port()).unwrap_or_default();
        tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((stream, _)) = silent.accept().await {
                held.push(stream);
            }
        });
        let http = ProviderHttp::with_proxies(Duration::from_millis(300), Matcher::builder().build());
        let build = post_to(format!("https://127.0.0.1:{port}/v1/chat/completions"));
        let sent = tokio::time::timeout(Duration::from_secs(5), http.transport(build().uri()).send(build)).await;
        let err = sent.unwrap_or_else(|_| panic!("the handshake was not bounded")).err().unwrap_or_default();
        assert!(err.contains("no connection within"), "{err}");
    }

    #[test]
    fn only_a_server_s_refusal_is_sent_again() {
        let local: h2::Error = h2::Reason::REFUSED_STREAM.into();
        assert!(!refused_unprocessed(&local), "a reason of our own is not the server's refusal");
        assert!(!refused_unprocessed(&io::Error::other("connection reset")));
    }

    #[tokio::test]
    async fn a_proxy_that_is_not_http_is_refused_with_the_reason() {
        let proxies = Matcher::builder().all("socks5://127.0.0.1:1080").build();
        let http = ProviderHttp::with_proxies(Duration::from_secs(5), proxies);
        let request = post(9);
        let err = http.transport(request().uri()).send(request).await.err().unwrap_or_default();
        assert!(err.contains("only http:// and https:// proxies are supported"), "{err}");
    }
}
