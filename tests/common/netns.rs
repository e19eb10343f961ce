//! Hosts modelled by Linux network namespaces, for ensembles whose members must look like
//! separate machines (tests/multihost.rs). [`Network::create`] makes one namespace per host,
//! each with `lo` up and one end of a veth pair (address `10.213.S.<i+1>/24`), the other ends
//! joined by a bridge in the root namespace that has `10.213.S.254/24`: the test process
//! reaches every host as a client over the bridge, and every host has its own address, so the
//! members can all use the same ports, as on real hosts. [`Network::cut`] takes a host's
//! root-side link down: a silent partition (nothing is closed, packets just stop both ways;
//! `tc netem loss 100%` would model the same, but `sch_netem` is missing on some kernels).
//!
//! Needs root (CAP_NET_ADMIN) and iproute2 (`ip`, `ss`). A step that fails panics with the
//! command and its stderr: a machine without the privilege fails the test, it never passes it.
//! Names carry the pid and a per-process counter (interface names stay within 15 characters);
//! [`Network`]'s Drop deletes everything it created, also when the test panics.
#![allow(dead_code)]

use std::net::{IpAddr, Ipv4Addr};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use super::ensemble::Host;

static NETWORKS: AtomicU32 = AtomicU32::new(0);

/// Runs `ip args...`; Err(command and stderr) if it fails.
fn ip(args: &[&str]) -> Result<String, String> {
    let out = Command::new("ip").args(args).output().map_err(|e| {
        format!(
            "cannot run `ip {}`: {e} (is iproute2 installed?)",
            args.join(" ")
        )
    })?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "`ip {}` failed ({}): {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Like [`ip`], but a failure panics with a hint about the privilege these tests need.
fn ip_must(args: &[&str]) -> String {
    ip(args).unwrap_or_else(|e| {
        panic!(
            "network namespace setup: {e}\nthe multi-host tests need root (CAP_NET_ADMIN), \
             network namespaces, veth and bridge support, and iproute2"
        )
    })
}

/// One host: a namespace, and the root-side end of its veth pair (on the bridge).
#[derive(Debug)]
pub struct NsHost {
    pub netns: String,
    /// Root-side veth end, a port of the bridge.
    pub veth: String,
    pub ip: Ipv4Addr,
}

/// Namespaces, veth pairs and a bridge; all deleted on drop.
#[derive(Debug)]
pub struct Network {
    pub bridge: String,
    pub bridge_ip: Ipv4Addr,
    pub hosts: Vec<NsHost>,
    /// Names created so far, for Drop (a failed setup still cleans up what it made).
    made_links: Vec<String>,
    made_netns: Vec<String>,
}

impl Network {
    /// Creates `n` hosts on one bridge. Panics (after cleaning up) if any step fails.
    pub fn create(n: usize) -> Network {
        assert!((1..=15).contains(&n), "one hex digit per host index");
        let pid = std::process::id();
        let seq = NETWORKS.fetch_add(1, Ordering::SeqCst);
        // pid in hex (at most 6 digits: pid_max <= 2^22) and the counter: "crb" + tag + index
        // stays within the 15-character interface name limit.
        let tag = format!("{pid:x}{:x}", seq % 16);
        remove_stale();
        let subnet = pick_subnet(pid, seq);
        let mut net = Network {
            bridge: format!("crb{tag}"),
            bridge_ip: Ipv4Addr::new(10, 213, subnet, 254),
            hosts: Vec::new(),
            made_links: Vec::new(),
            made_netns: Vec::new(),
        };
        // Leftovers of an earlier process with the same pid (killed before its Drop ran).
        let _ = ip(&["link", "del", &net.bridge]);
        let br = net.bridge.clone();
        ip_must(&[
            "link",
            "add",
            "name",
            &br,
            "type",
            "bridge",
            // Bridged frames must not meet the host's iptables rules (a FORWARD policy of
            // DROP, as Docker sets, would silently cut the hosts off).
            "nf_call_iptables",
            "0",
            "nf_call_ip6tables",
            "0",
            "nf_call_arptables",
            "0",
        ]);
        net.made_links.push(br.clone());
        ip_must(&["addr", "add", &format!("{}/24", net.bridge_ip), "dev", &br]);
        ip_must(&["link", "set", &br, "up"]);
        for i in 0..n {
            let netns = format!("crn{tag}-{i}");
            let veth = format!("crv{tag}{i:x}");
            let peer = format!("crp{tag}{i:x}");
            let addr = Ipv4Addr::new(10, 213, subnet, i as u8 + 1);
            let _ = ip(&["netns", "del", &netns]);
            let _ = ip(&["link", "del", &veth]);
            ip_must(&["netns", "add", &netns]);
            net.made_netns.push(netns.clone());
            ip_must(&[
                "link", "add", "name", &veth, "type", "veth", "peer", "name", &peer,
            ]);
            net.made_links.push(veth.clone());
            ip_must(&["link", "set", &peer, "netns", &netns]);
            ip_must(&["link", "set", &veth, "master", &br]);
            ip_must(&["link", "set", &veth, "up"]);
            ip_must(&["-n", &netns, "link", "set", "lo", "up"]);
            ip_must(&[
                "-n",
                &netns,
                "addr",
                "add",
                &format!("{addr}/24"),
                "dev",
                &peer,
            ]);
            ip_must(&["-n", &netns, "link", "set", &peer, "up"]);
            net.hosts.push(NsHost {
                netns,
                veth,
                ip: addr,
            });
        }
        net
    }

    /// The hosts as the ensemble harness takes them.
    pub fn ensemble_hosts(&self) -> Vec<Host> {
        self.hosts
            .iter()
            .map(|h| Host {
                ip: IpAddr::V4(h.ip),
                netns: Some(h.netns.clone()),
            })
            .collect()
    }

    /// Takes host `i`'s link down (root side): nothing reaches it or leaves it, nothing is
    /// closed.
    pub fn cut(&self, i: usize) {
        ip_must(&["link", "set", &self.hosts[i].veth, "down"]);
    }

    /// Brings host `i`'s link back up.
    pub fn heal(&self, i: usize) {
        ip_must(&["link", "set", &self.hosts[i].veth, "up"]);
    }

    /// Local addresses (`ip:port`) of the TCP listeners in host `i`'s namespace (`ss -ltn`).
    pub fn listeners(&self, i: usize) -> Vec<String> {
        let out = ip_must(&["netns", "exec", &self.hosts[i].netns, "ss", "-ltnH"]);
        out.lines()
            .filter_map(|l| l.split_whitespace().nth(3).map(str::to_string))
            .collect()
    }

    /// A four-letter word sent to `addr` from inside host `i`'s namespace (reaches a member
    /// whose link is cut, on its own address). Bounded by `timeout` for connect and read.
    pub async fn four_letter_inside(
        &self,
        i: usize,
        addr: &str,
        cmd: &str,
        timeout: Duration,
    ) -> std::io::Result<String> {
        let ns_path = format!("/run/netns/{}", self.hosts[i].netns);
        let addr: std::net::SocketAddr = addr.parse().expect("socket address");
        let cmd = cmd.to_string();
        // A thread of its own joins the namespace (setns changes the calling thread only) and
        // ends with it, so no pooled thread is left in the wrong namespace.
        let job = move || -> std::io::Result<String> {
            use std::io::{Read, Write};
            use std::os::fd::AsRawFd;
            let f = std::fs::File::open(&ns_path)?;
            // SAFETY: setns with a valid namespace fd, on this short-lived thread only.
            if unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                return Err(std::io::Error::last_os_error());
            }
            let mut s = std::net::TcpStream::connect_timeout(&addr, timeout)?;
            s.set_read_timeout(Some(timeout))?;
            s.write_all(cmd.as_bytes())?;
            let mut out = String::new();
            s.read_to_string(&mut out)?;
            Ok(out)
        };
        tokio::task::spawn_blocking(move || {
            std::thread::spawn(job)
                .join()
                .unwrap_or_else(|_| Err(std::io::Error::other("four_letter_inside panicked")))
        })
        .await
        .expect("join four_letter_inside")
    }
}

/// Deletes what earlier test processes that are gone (killed before their Drop ran) left:
/// namespaces and links named with a tag whose pid no longer exists.
fn remove_stale() {
    let dead = |tag: &str| {
        // The tag is the pid in hex and one hex digit of counter.
        let pid = tag.get(..tag.len().saturating_sub(1)).unwrap_or("");
        u32::from_str_radix(pid, 16)
            .is_ok_and(|p| !std::path::Path::new(&format!("/proc/{p}")).exists())
    };
    let netns = ip(&["netns", "list"]).unwrap_or_default();
    for name in netns.lines().filter_map(|l| l.split_whitespace().next()) {
        if let Some((tag, _)) = name.strip_prefix("crn").and_then(|r| r.split_once('-')) {
            if dead(tag) {
                let _ = ip(&["netns", "del", name]);
            }
        }
    }
    let links = ip(&["-o", "link", "show"]).unwrap_or_default();
    for name in links.lines().filter_map(|l| l.split(": ").nth(1)) {
        let name = name.split('@').next().unwrap_or(name);
        if let Some(tag) = name.strip_prefix("crb") {
            if dead(tag) {
                let _ = ip(&["link", "del", name]);
            }
        }
        if let Some(tag) = name.strip_prefix("crv") {
            // The host index (one hex digit) follows the tag.
            if dead(&tag[..tag.len().saturating_sub(1)]) {
                let _ = ip(&["link", "del", name]);
            }
        }
    }
}

/// A /24 under 10.213.0.0/16 that no interface here uses yet (derived from the pid, so two
/// test processes rarely even try the same one).
fn pick_subnet(pid: u32, seq: u32) -> u8 {
    let used = ip(&["-o", "-4", "addr", "show"]).unwrap_or_default();
    for k in 0..250u32 {
        let s = ((pid.wrapping_mul(7) + seq * 31 + k) % 250 + 1) as u8;
        if !used.contains(&format!("10.213.{s}.")) {
            return s;
        }
    }
    panic!("no free 10.213.S.0/24 subnet:\n{used}");
}

impl Drop for Network {
    fn drop(&mut self) {
        // Deleting a root-side veth end deletes its peer in the namespace too.
        for l in self.made_links.iter().rev() {
            if let Err(e) = ip(&["link", "del", l]) {
                eprintln!("[netns] cleanup: {e}");
            }
        }
        for n in self.made_netns.iter().rev() {
            if let Err(e) = ip(&["netns", "del", n]) {
                eprintln!("[netns] cleanup: {e}");
            }
        }
    }
}
