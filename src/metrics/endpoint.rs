//! The `/metrics` endpoint: `metricsProvider.httpHost:httpPort` served by `crate::http` on
//! threads of its own. Each scrape gathers every shard's and the write core's figures as `mntr`
//! does (`Inspector::gather`) and renders them; nothing is kept between scrapes but the shards'
//! histograms. A port that cannot be bound is logged and skipped: the server keeps serving
//! clients (a pseudo-cluster's members on one host cannot all have port 7000).

use std::io::Read;
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;

use tracing::{info, warn};

use super::{render_only, Process};
use crate::http::{self, Limits, Request, Response};
use crate::server::{Gather, Inspector};

/// The content type of Prometheus's text format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";
/// The path ZooKeeper's provider serves.
pub const PATH: &str = "/metrics";

/// Starts the endpoint if the settings ask for one; returns where it listens.
pub fn start(inspector: Inspector) -> Option<SocketAddr> {
    let settings = inspector.config().metrics.clone();
    if !settings.enabled {
        return None;
    }
    let addr = SocketAddr::new(settings.http_host, settings.http_port);
    let listener = match TcpListener::bind(addr) {
        Ok(l) => l,
        Err(e) => {
            warn!(%addr, error = %e, "metrics endpoint not started (metricsProvider.httpPort); serving clients without it");
            return None;
        }
    };
    let handler = Endpoint {
        inspector,
        process: settings.export_process_info,
    };
    match http::serve("metrics", listener, Limits::default(), Arc::new(handler)) {
        Ok(server) => {
            let addr = server.local_addr();
            info!(%addr, "metrics endpoint serving {PATH}");
            Some(addr)
        }
        Err(e) => {
            warn!(%addr, error = %e, "metrics endpoint not started; serving clients without it");
            None
        }
    }
}

struct Endpoint {
    inspector: Inspector,
    process: bool,
}

impl http::Handler for Endpoint {
    fn handle(&self, req: &Request, _body: &mut dyn Read) -> Response {
        if req.path != PATH {
            return text(404, "Not Found: metrics are at /metrics\n");
        }
        if req.method != "GET" && req.method != "HEAD" {
            return text(405, "Method Not Allowed: GET or HEAD\n").header("Allow", "GET, HEAD");
        }
        let mut data = self.inspector.gather(Gather {
            storage: true,
            ..Gather::default()
        });
        if self.process {
            data.metrics.process = Some(Process::read());
        }
        // `?name[]=znode_count&name[]=...` asks for those families only (Prometheus's Java
        // client, which ZooKeeper's provider serves with, takes the same parameter).
        let only: Vec<String> = req
            .query
            .iter()
            .filter(|(k, _)| k == "name[]")
            .map(|(_, v)| v.clone())
            .collect();
        let only = (!only.is_empty()).then_some(only.as_slice());
        Response::new(200, CONTENT_TYPE, render_only(&data, only))
    }
}

fn text(status: u16, body: &str) -> Response {
    Response::new(status, "text/plain; charset=utf-8", body.to_string())
}
