//! Creates the znodes a workload needs before its phases start, over a blocking socket (TLS
//! too, with `--tls-ca`), pipelined in chunks. Existing nodes are reused; key nodes are set to the payload size.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use bytes::BytesMut;
use corral::proto::{split_frame, Frame};

use crate::run::{PhaseCfg, Workload};
use crate::sess::MAX_FRAME;
use crate::wire;

const NODE_EXISTS: i32 = -110;

pub(crate) struct Blocking {
    s: Box<dyn crate::tls::BlockingIo>,
    rbuf: BytesMut,
    xid: i32,
}

impl Blocking {
    pub(crate) fn connect(addr: SocketAddr, timeout: Duration) -> Result<Blocking, String> {
        Blocking::connect_tls(addr, timeout, None)
    }

    /// `connect`, over TLS with `tls`.
    pub(crate) fn connect_tls(
        addr: SocketAddr,
        timeout: Duration,
        tls: Option<&std::sync::Arc<rustls::ClientConfig>>,
    ) -> Result<Blocking, String> {
        let tcp = TcpStream::connect_timeout(&addr, timeout)
            .map_err(|e| format!("setup: connect to {addr}: {e}"))?;
        // A server that accepted but never answers fails the call rather than hanging it.
        tcp.set_read_timeout(Some(timeout * 3))
            .map_err(|e| e.to_string())?;
        let _ = tcp.set_nodelay(true);
        let s = crate::tls::blocking(tcp, addr, tls)
            .map_err(|e| format!("setup: TLS handshake with {addr}: {e}"))?;
        let mut b = Blocking {
            s,
            rbuf: BytesMut::new(),
            xid: 1,
        };
        let mut out = BytesMut::new();
        wire::connect(&mut out, 30_000);
        b.s.write_all(&out).map_err(|e| e.to_string())?;
        let p = b.frame()?;
        wire::connect_response(p).map_err(|e| format!("setup: handshake: {e}"))?;
        Ok(b)
    }

    fn frame(&mut self) -> Result<bytes::Bytes, String> {
        let mut chunk = [0u8; 65536];
        loop {
            match split_frame(&mut self.rbuf, MAX_FRAME) {
                Frame::Payload(p) => return Ok(p),
                Frame::TooLarge(_) => return Err("setup: bad frame".into()),
                Frame::Incomplete => {}
            }
            let n = self
                .s
                .read(&mut chunk)
                .map_err(|e| format!("setup: read: {e}"))?;
            if n == 0 {
                return Err("setup: server closed the connection".into());
            }
            self.rbuf.extend_from_slice(&chunk[..n]);
        }
    }

    /// Sends every request `build(out, xid, i)` for i in 0..n, pipelined 512 at a time, and
    /// returns the error code of each.
    pub(crate) fn pipeline(
        &mut self,
        n: usize,
        build: impl FnMut(&mut BytesMut, i32, usize),
    ) -> Result<Vec<i32>, String> {
        let mut codes = Vec::with_capacity(n);
        self.window(n, 512, build, |_, r| {
            codes.push(r.err);
            Ok(())
        })?;
        Ok(codes)
    }

    /// Sends every request `build(out, xid, i)` for i in 0..n with at most `window` in flight,
    /// and hands each reply, in order, to `on_reply(i, reply)`. Requests freed by the replies
    /// already read go out together, in one write.
    pub(crate) fn window(
        &mut self,
        n: usize,
        window: usize,
        mut build: impl FnMut(&mut BytesMut, i32, usize),
        mut on_reply: impl FnMut(usize, wire::Reply) -> Result<(), String>,
    ) -> Result<(), String> {
        let window = window.max(1);
        let first = self.xid;
        let (mut sent, mut got) = (0, 0);
        let mut out = BytesMut::new();
        while got < n {
            while sent < n && sent - got < window {
                build(&mut out, self.xid, sent);
                self.xid += 1;
                sent += 1;
            }
            if !out.is_empty() {
                self.s
                    .write_all(&out)
                    .map_err(|e| format!("setup: write: {e}"))?;
                out.clear();
            }
            // One reply, waiting for it, then every one already read.
            loop {
                let r = wire::reply(self.frame()?)?;
                if r.xid < 0 {
                    continue;
                }
                if r.xid != first.wrapping_add(got as i32) {
                    return Err("setup: xid mismatch".into());
                }
                on_reply(got, r)?;
                got += 1;
                if got == n || !self.frame_buffered() {
                    break;
                }
            }
        }
        Ok(())
    }

    /// Whether a whole frame is already in the read buffer.
    fn frame_buffered(&self) -> bool {
        self.rbuf.len() >= 4
            && self.rbuf.len() - 4
                >= u32::from_be_bytes(self.rbuf[..4].try_into().unwrap()) as usize
    }

    /// Creates each path (empty data), NodeExists allowed.
    pub(crate) fn ensure(&mut self, paths: &[String]) -> Result<(), String> {
        let acl = wire::open_acl();
        let codes = self.pipeline(paths.len(), |out, xid, i| {
            wire::create(out, xid, &paths[i], b"", &acl, 0)
        })?;
        for (p, c) in paths.iter().zip(codes) {
            if c != 0 && c != NODE_EXISTS {
                return Err(format!("setup: create {p}: {}", wire::code_name(c)));
            }
        }
        Ok(())
    }

    pub(crate) fn close(mut self) {
        let mut out = BytesMut::new();
        wire::close_session(&mut out, self.xid);
        let _ = self.s.write_all(&out);
        let _ = self.frame();
    }
}

/// Creates what `cfg.workload` needs on the first server (the others, in a future ensemble, see
/// the same tree).
pub fn prepare(cfg: &PhaseCfg) -> Result<(), String> {
    let mut b = Blocking::connect_tls(cfg.servers[0], cfg.connect_timeout, cfg.tls.as_ref())?;
    let p = &cfg.paths;
    // Parents of the root, then the root.
    let mut chain = Vec::new();
    let mut acc = String::new();
    for comp in p.root.split('/').filter(|c| !c.is_empty()) {
        acc.push('/');
        acc.push_str(comp);
        chain.push(acc.clone());
    }
    b.ensure(&chain)?;
    match cfg.workload {
        Workload::Getdata | Workload::Exists | Workload::Setdata | Workload::Mix => {
            b.ensure(&[p.keys_dir()])?;
            let payload = vec![b'x'; cfg.payload];
            let acl = wire::open_acl();
            let keys: Vec<String> = (0..cfg.keys.max(1)).map(|i| p.key(i)).collect();
            let codes = b.pipeline(keys.len(), |out, xid, i| {
                wire::create(out, xid, &keys[i], &payload, &acl, 0)
            })?;
            // Nodes left by an earlier run: bring them to this run's payload size.
            let existing: Vec<&String> = keys
                .iter()
                .zip(&codes)
                .filter(|(_, c)| **c == NODE_EXISTS)
                .map(|(k, _)| k)
                .collect();
            for (k, c) in keys.iter().zip(&codes) {
                if *c != 0 && *c != NODE_EXISTS {
                    return Err(format!("setup: create {k}: {}", wire::code_name(*c)));
                }
            }
            let codes = b.pipeline(existing.len(), |out, xid, i| {
                wire::set_data(out, xid, existing[i], &payload, -1)
            })?;
            if let Some(c) = codes.iter().find(|c| **c != 0) {
                return Err(format!("setup: setData: {}", wire::code_name(*c)));
            }
        }
        Workload::Getchildren => {
            let dir = p.children_dir(cfg.children);
            b.ensure(std::slice::from_ref(&dir))?;
            let kids: Vec<String> = (0..cfg.children).map(|i| format!("{dir}/c{i}")).collect();
            b.ensure(&kids)?;
        }
        Workload::CreateDelete => b.ensure(&[p.cd_dir()])?,
        Workload::CreateDeleteEph => b.ensure(&[p.seq_dir()])?,
        Workload::Watch => b.ensure(&[p.watched()])?,
        Workload::Lock => {
            b.ensure(&[p.locks_dir()])?;
            let locks: Vec<String> = (0..cfg.locks.max(1)).map(|l| p.lock(l)).collect();
            b.ensure(&locks)?;
        }
        Workload::Churn => {}
    }
    b.close();
    Ok(())
}
