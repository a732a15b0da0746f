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
//! A proxied provider is reached through an HTTP `CONNECT` tunnel, `http://` base URLs
//! included (reqwest would have forwarded those in absolute form instead); the proxy itself
//! must be an `http://` proxy.

use std::{error::Error as StdError, fmt, sync::Arc, time::Duration};

use bytes::Bytes;
use http::{Request, Response, Uri};
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

type DirectClient = Client<HttpsConnector<HttpConnector>, Full<Bytes>>;
type TunnelClient = Client<HttpsConnector<Tunnel<HttpConnector>>, Full<Bytes>>;

/// Makes each provider's [`Transport`]. Clones share the direct connection pool.
#[derive(Clone)]
pub struct ProviderHttp {
    tls: Result<rustls::ClientConfig, Arc<str>>,
    direct: Option<DirectClient>,
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
        let tls = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .map(|config| {
                let mut roots = rustls::RootCertStore::empty();
                roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
                config.with_root_certificates(roots).with_no_client_auth()
            })
            .map_err(|e| Arc::from(format!("TLS could not be set up: {e}")));
        let direct = tls.as_ref().ok().map(|tls| pooled(tls.clone(), tcp(connect_timeout)));
        Self { tls, direct, proxies: Arc::new(proxies), connect_timeout }
    }

    /// The transport to `base`, a provider's base URL.
    pub fn transport(&self, base: &Uri) -> Transport {
        let (tls, direct) = match (&self.tls, &self.direct) {
            (Ok(tls), Some(direct)) => (tls, direct),
            (Err(e), _) => return Transport(Kind::Unusable(e.clone())),
            (Ok(_), None) => return Transport(Kind::Unusable(Arc::from("TLS could not be set up"))),
        };
        let Some(proxy) = self.proxies.intercept(base) else {
            return Transport(Kind::Direct(direct.clone()));
        };
        if proxy.uri().scheme_str() != Some("http") {
            let message = format!("the proxy for {base} is {}: only http:// proxies are supported", proxy.uri());
            return Transport(Kind::Unusable(Arc::from(message)));
        }
        let mut tunnel = Tunnel::new(proxy.uri().clone(), tcp(self.connect_timeout));
        if let Some(auth) = proxy.basic_auth() {
            tunnel = tunnel.with_auth(auth.clone());
        }
        Transport(Kind::Tunnel(pooled(tls.clone(), tunnel)))
    }
}

fn tcp(connect_timeout: Duration) -> HttpConnector {
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_connect_timeout(Some(connect_timeout));
    http.set_nodelay(true);
    http
}

fn pooled<C>(tls: rustls::ClientConfig, connector: C) -> Client<HttpsConnector<C>, Full<Bytes>>
where
    HttpsConnector<C>: hyper_util::client::legacy::connect::Connect + Clone + Send + Sync + 'static,
{
    let https = HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .enable_http2()
        .wrap_connector(connector);
    Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(90))
        .pool_timer(TokioTimer::new())
        .timer(TokioTimer::new())
        .build(https)
}

/// One provider's way out: direct, through a proxy's tunnel, or an error every call reports.
#[derive(Clone, Debug)]
pub struct Transport(Kind);

#[derive(Clone, Debug)]
enum Kind {
    Direct(DirectClient),
    Tunnel(TunnelClient),
    Unusable(Arc<str>),
}

impl Transport {
    /// Sends `request`; a failure before a response is the error's description, with its causes.
    pub async fn send(&self, request: Request<Full<Bytes>>) -> Result<Response<Incoming>, String> {
        let pending: ResponseFuture = match &self.0 {
            Kind::Direct(client) => client.request(request),
            Kind::Tunnel(client) => client.request(request),
            Kind::Unusable(message) => return Err(message.to_string()),
        };
        pending.await.map_err(|e| describe(&e))
    }
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
mod tests {
    use std::sync::Mutex;

    use tokio::{
        io::{AsyncReadExt, AsyncWriteExt},
        net::{TcpListener, TcpStream},
    };

    use super::*;

    /// Reads up to the end of a request or response head.
    async fn head(stream: &mut TcpStream) -> String {
        let mut bytes = Vec::new();
        let mut byte = [0u8; 1];
        while !bytes.ends_with(b"\r\n\r\n") && stream.read(&mut byte).await.unwrap_or(0) == 1 {
            bytes.push(byte[0]);
        }
        String::from_utf8_lossy(&bytes).into_owned()
    }

    /// An upstream answering every request on one connection with `{}`.
    async fn upstream() -> u16 {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap_or_else(|e| panic!("bind: {e}"));
        let port = listener.local_addr().map(|a| a.port()).unwrap_or_default();
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let request = head(&mut stream).await;
                let length = request
                    .lines()
                    .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().to_owned()))
                    .and_then(|v| v.parse::<usize>().ok())
                    .unwrap_or(0);
                let mut body = vec![0u8; length];
                let _ = stream.read_exact(&mut body).await;
                let reply = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}";
                let _ = stream.write_all(reply.as_bytes()).await;
            }
        });
        port
    }

    /// An HTTP CONNECT proxy that records each request line.
    async fn proxy(seen: Arc<Mutex<Vec<String>>>) -> u16 {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap_or_else(|e| panic!("bind: {e}"));
        let port = listener.local_addr().map(|a| a.port()).unwrap_or_default();
        tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                let request = head(&mut client).await;
                let line = request.lines().next().unwrap_or_default().to_owned();
                seen.lock().unwrap_or_else(|e| e.into_inner()).push(line.clone());
                let target = line.split(' ').nth(1).unwrap_or_default().to_owned();
                let Ok(mut server) = TcpStream::connect(target).await else { continue };
                let _ = client.write_all(b"HTTP/1.1 200 Connection Established\r\n\r\n").await;
                tokio::spawn(async move {
                    let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                });
            }
        });
        port
    }

    fn post(port: u16) -> Request<Full<Bytes>> {
        let mut request = Request::new(Full::new(Bytes::from_static(b"{}")));
        *request.method_mut() = http::Method::POST;
        *request.uri_mut() = format!("http://127.0.0.1:{port}/v1/chat/completions").parse().unwrap_or_default();
        request
    }

    #[tokio::test]
    async fn a_proxied_provider_is_reached_through_a_connect_tunnel() {
        let upstream = upstream().await;
        let seen = Arc::new(Mutex::new(Vec::new()));
        let proxy = proxy(seen.clone()).await;
        let proxies = Matcher::builder().all(format!("http://127.0.0.1:{proxy}")).build();
        let http = ProviderHttp::with_proxies(Duration::from_secs(5), proxies);
        let request = post(upstream);
        let transport = http.transport(request.uri());
        let response = transport.send(request).await.unwrap_or_else(|e| panic!("send: {e}"));
        assert_eq!(response.status(), 200);
        let seen = seen.lock().unwrap_or_else(|e| e.into_inner()).clone();
        assert_eq!(seen, [format!("CONNECT 127.0.0.1:{upstream} HTTP/1.1")]);
    }

    #[tokio::test]
    async fn without_a_proxy_the_provider_is_reached_directly_and_a_refused_one_is_described() {
        let upstream = upstream().await;
        let http = ProviderHttp::with_proxies(Duration::from_secs(5), Matcher::builder().build());
        let request = post(upstream);
        let response = http.transport(request.uri()).send(request).await.unwrap_or_else(|e| panic!("send: {e}"));
        assert_eq!(response.status(), 200);

        let closed = TcpListener::bind("127.0.0.1:0").await.unwrap_or_else(|e| panic!("bind: {e}"));
        let port = closed.local_addr().map(|a| a.port()).unwrap_or_default();
        drop(closed);
        let request = post(port);
        let err = http.transport(request.uri()).send(request).await.err().unwrap_or_default();
        assert!(err.contains("onnect"), "{err}");
    }

    #[tokio::test]
    async fn a_proxy_that_is_not_http_is_refused_with_the_reason() {
        let proxies = Matcher::builder().all("socks5://127.0.0.1:1080").build();
        let http = ProviderHttp::with_proxies(Duration::from_secs(5), proxies);
        let request = post(9);
        let err = http.transport(request.uri()).send(request).await.err().unwrap_or_default();
        assert!(err.contains("only http:// proxies are supported"), "{err}");
    }
}
