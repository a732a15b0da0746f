//! Forwarding through an HTTP proxy: a connector to the proxy whose connections say they
//! are proxied, so that hyper-util's client writes each request's URI in absolute form
//! (`POST http://host:port/path`) for the proxy to forward (RFC 9112, section 3.2.2). Used
//! for plain `http://` providers; `https://` ones are tunnelled ([`super::transport`]).

use std::{
    error::Error as StdError,
    io,
    pin::Pin,
    task::{Context, Poll},
};

use http::Uri;
use hyper_rustls::{HttpsConnector, MaybeHttpsStream};
use hyper_util::{
    client::legacy::connect::{Connected, Connection, HttpConnector},
    rt::TokioIo,
};

use super::transport::describe;

type BoxError = Box<dyn StdError + Send + Sync>;

/// A connector to an HTTP proxy, whatever the destination, whose connections say they are
/// proxied: on them the client writes each request's URI in absolute form
/// (`POST http://host:port/path`), for the proxy to forward (RFC 9112, section 3.2.2).
#[derive(Clone, Debug)]
pub(super) struct Forward {
    /// The proxy.
    pub(super) proxy: Uri,
    /// How to reach it (TLS to an `https://` proxy).
    pub(super) connector: HttpsConnector<HttpConnector>,
}

impl tower_service::Service<Uri> for Forward {
    type Response = Proxied;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Proxied, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.connector.poll_ready(cx)
    }

    fn call(&mut self, _destination: Uri) -> Self::Future {
        let proxy = self.proxy.clone();
        let connecting = self.connector.call(proxy.clone());
        Box::pin(async move {
            // Said as the proxy's failure: a certificate refused here is the proxy's.
            let connected =
                connecting.await.map_err(|e| format!("cannot reach the proxy {proxy}: {}", describe(&*e)))?;
            Ok(Proxied(connected))
        })
    }
}

/// A connection to a forwarding proxy.
pub(super) struct Proxied(MaybeHttpsStream<TokioIo<tokio::net::TcpStream>>);

impl Connection for Proxied {
    fn connected(&self) -> Connected {
        self.0.connected().proxy(true)
    }
}

impl hyper::rt::Read for Proxied {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl hyper::rt::Write for Proxied {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.0.is_write_vectored()
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write_vectored(cx, bufs)
    }
}
