//! Creates the znodes a workload needs before its phases start, over a plain blocking socket
//! (pipelined in chunks). Existing nodes are reused; key nodes are set to the payload size.

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
    s: TcpStream,
    rbuf: BytesMut,
    xid: i32,
}

impl Blocking {
    pub(crate) fn connect(addr: SocketAddr, timeout: Duration) -> Result<Blocking, String> {
        let s = TcpStream::connect_timeout(&addr, timeout)
            .map_err(|e| format!("setup: connect to {addr}: {e}"))?;
        // A server that accepted but never answers fails the call rather than hanging it.
        s.set_read_timeout(Some(timeout * 3))
            .map_err(|e| e.to_string())?;
        let _ = s.set_nodelay(true);
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
        mut build: impl FnMut(&mut BytesMut, i32, usize),
    ) -> Result<Vec<i32>, String> {
        let mut codes = Vec::with_capacity(n);
        let mut i = 0;
        while i < n {
            let batch = (n - i).min(512);
            let mut out = BytesMut::new();
            let first = self.xid;
            for k in 0..batch {
                build(&mut out, self.xid, i + k);
                self.xid += 1;
            }
            self.s
                .write_all(&out)
                .map_err(|e| format!("setup: write: {e}"))?;
            let mut got = 0;
            while got < batch {
                let r = wire::reply(self.frame()?)?;
                if r.xid < 0 {
                    continue;
                }
                if r.xid != first + got as i32 {
                    return Err("setup: xid mismatch".into());
                }
                codes.push(r.err);
                got += 1;
            }
            i += batch;
        }
        Ok(codes)
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
    let mut b = Blocking::connect(cfg.servers[0], cfg.connect_timeout)?;
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
