//! The two halves of the restart benchmark (`loadgen/restart.sh`): `populate` builds a large tree
//! of a fixed shape quickly (pipelined creates over one session), and `probe` measures how long
//! a restarting server takes to serve it again: the time until a fresh session's getData of the
//! last node created succeeds. Any server that speaks the protocol can be measured the same way,
//! which is the point: corral and ZooKeeper restart the same data shape.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use corral::proto::codes::op;

use crate::setup::Blocking;
use crate::wire;

/// The tree: `root/pNNNN/nNNNNNN`, `fanout` children per parent, `count` leaves in all, each
/// holding `payload` bytes. Parents fill one after the other, so the shape is the same for
/// any count.
pub struct Shape {
    pub root: String,
    pub count: usize,
    pub fanout: usize,
    pub payload: usize,
}

impl Shape {
    fn parent(&self, p: usize) -> String {
        format!("{}/p{p:04}", self.root)
    }

    fn leaf(&self, i: usize) -> String {
        format!("{}/n{i:07}", self.parent(i / self.fanout))
    }

    /// The last leaf: present only once the whole tree is.
    pub fn last(&self) -> String {
        self.leaf(self.count.saturating_sub(1))
    }
}

/// Creates the tree (NodeExists allowed, so an interrupted populate can be resumed). Prints
/// progress to stderr every 100k nodes.
pub fn populate(addr: SocketAddr, shape: &Shape) -> Result<(), String> {
    if shape.fanout == 0 || shape.count == 0 {
        return Err("populate: --count and --fanout must be > 0".into());
    }
    let mut b = Blocking::connect(addr, Duration::from_secs(10))?;
    let mut chain = Vec::new();
    let mut acc = String::new();
    for comp in shape.root.split('/').filter(|c| !c.is_empty()) {
        acc.push('/');
        acc.push_str(comp);
        chain.push(acc.clone());
    }
    b.ensure(&chain)?;
    let parents: Vec<String> = (0..shape.count.div_ceil(shape.fanout))
        .map(|p| shape.parent(p))
        .collect();
    b.ensure(&parents)?;
    let payload = vec![b'x'; shape.payload];
    let acl = wire::open_acl();
    let t = Instant::now();
    let mut done = 0;
    while done < shape.count {
        let n = (shape.count - done).min(10_000);
        let codes = b.pipeline(n, |out, xid, i| {
            wire::create(out, xid, &shape.leaf(done + i), &payload, &acl, 0)
        })?;
        if let Some(c) = codes.iter().find(|c| **c != 0 && **c != -110) {
            return Err(format!("populate: create: {}", wire::code_name(*c)));
        }
        done += n;
        if done % 100_000 == 0 || done == shape.count {
            eprintln!(
                "populate: {done} nodes, {:.0} creates/s",
                done as f64 / t.elapsed().as_secs_f64()
            );
        }
    }
    b.close();
    Ok(())
}

/// Waits until a new session's getData of `path` succeeds; returns the time from the call.
/// Connection refusals, closed connections (ZooKeeper accepts TCP before it has loaded its data
/// and then closes) and errors are retried every `every` until `limit`.
pub fn probe(
    addr: SocketAddr,
    path: &str,
    every: Duration,
    limit: Duration,
) -> Result<Duration, String> {
    let t = Instant::now();
    let mut last = String::from("no attempt");
    while t.elapsed() < limit {
        match attempt(addr, path) {
            Ok(()) => return Ok(t.elapsed()),
            Err(e) => last = e,
        }
        std::thread::sleep(every);
    }
    Err(format!(
        "probe: {addr} did not serve {path} within {limit:?}: {last}"
    ))
}

fn attempt(addr: SocketAddr, path: &str) -> Result<(), String> {
    let mut b = Blocking::connect(addr, Duration::from_secs(2))?;
    let codes = b.pipeline(1, |out, xid, _| {
        wire::read_req(out, xid, op::GET_DATA, path, false)
    })?;
    b.close();
    match codes[0] {
        0 => Ok(()),
        c => Err(format!("getData {path}: {}", wire::code_name(c))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shape_fills_parents_in_order() {
        let s = Shape {
            root: "/r".into(),
            count: 2500,
            fanout: 1000,
            payload: 1,
        };
        assert_eq!(s.leaf(0), "/r/p0000/n0000000");
        assert_eq!(s.leaf(1999), "/r/p0001/n0001999");
        assert_eq!(s.last(), "/r/p0002/n0002499");
    }
}
