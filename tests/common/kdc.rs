//! A throwaway MIT Kerberos realm for the GSSAPI tests: Debian's krb5-kdc and kadmin.local
//! (krb5-admin-server) set up a database, principals and keytabs in a temp dir, and `krb5kdc`
//! serves it on a free loopback port (TCP only: `udp_preference_limit = 1`) until the value
//! is dropped. Nothing outside the dir is touched: every tool gets `KRB5_CONFIG` and
//! `KRB5_KDC_PROFILE` pointing into it.

#![allow(dead_code)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const REALM: &str = "CORRAL.TEST";
/// ZooKeeper's service principal for a server reached as `localhost`.
pub const SERVICE: &str = "zookeeper/localhost";

pub struct Kdc {
    dir: PathBuf,
    port: u16,
    child: Child,
}

impl Kdc {
    /// A realm with the service principal and the users `users`, each with its keytab.
    pub fn start(users: &[&str]) -> Kdc {
        let dir = super::make_temp_dir();
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        std::fs::write(
            dir.join("krb5.conf"),
            format!(
                "[libdefaults]\n  default_realm = {REALM}\n  dns_lookup_kdc = false\n  \
                 dns_lookup_realm = false\n  rdns = false\n  dns_canonicalize_hostname = false\n  \
                 udp_preference_limit = 1\n  ticket_lifetime = 1h\n\
                 [realms]\n  {REALM} = {{\n    kdc = 127.0.0.1:{port}\n  }}\n\
                 [domain_realm]\n  localhost = {REALM}\n"
            ),
        )
        .unwrap();
        let d = dir.display();
        std::fs::write(
            dir.join("kdc.conf"),
            format!(
                "[kdcdefaults]\n  kdc_listen = 127.0.0.1:{port}\n  kdc_tcp_listen = 127.0.0.1:{port}\n\
                 [realms]\n  {REALM} = {{\n    database_name = {d}/principal\n    \
                 key_stash_file = {d}/stash\n    acl_file = {d}/kadm5.acl\n    \
                 kdc_listen = 127.0.0.1:{port}\n    kdc_tcp_listen = 127.0.0.1:{port}\n    \
                 max_life = 1h\n  }}\n\
                 [logging]\n  kdc = FILE:{d}/kdc.log\n"
            ),
        )
        .unwrap();
        std::fs::write(dir.join("kadm5.acl"), "").unwrap();
        let mut kdc = Kdc {
            child: Command::new("true").spawn().unwrap(),
            dir,
            port,
        };
        kdc.run(
            "/usr/sbin/kdb5_util",
            &["-r", REALM, "create", "-s", "-P", "master-secret"],
        );
        for p in [SERVICE].iter().chain(users) {
            kdc.add_principal(p);
        }
        let child = kdc
            .tool("/usr/sbin/krb5kdc")
            .args(["-n", "-r", REALM])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("krb5kdc (Debian: krb5-kdc)");
        let deadline = Instant::now() + Duration::from_secs(20);
        let _ = std::mem::replace(&mut kdc.child, child).wait();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Some(status) = kdc.child.try_wait().unwrap() {
                panic!("krb5kdc exited with {status}: {}", kdc.log());
            }
            assert!(Instant::now() < deadline, "krb5kdc did not listen");
            std::thread::sleep(Duration::from_millis(50));
        }
        kdc
    }

    /// A command with this realm's configuration.
    fn tool(&self, program: &str) -> Command {
        let mut cmd = Command::new(program);
        cmd.env("KRB5_CONFIG", self.krb5_conf())
            .env("KRB5_KDC_PROFILE", self.dir.join("kdc.conf"));
        cmd
    }

    fn run(&self, program: &str, args: &[&str]) {
        let out = self
            .tool(program)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("{program} (Debian: krb5-kdc, krb5-admin-server): {e}"));
        assert!(
            out.status.success(),
            "{program} {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn kadmin(&self, query: &str) {
        self.run("/usr/sbin/kadmin.local", &["-r", REALM, "-q", query]);
    }

    /// Adds `name` (without the realm) with a random key, exported to its keytab.
    pub fn add_principal(&self, name: &str) {
        self.kadmin(&format!("addprinc -randkey {name}"));
        self.kadmin(&format!("ktadd -k {} {name}", self.keytab(name).display()));
    }

    /// Gives `name` a new random key in the database only: keytabs exported before no longer
    /// hold its current key.
    pub fn rotate_key(&self, name: &str) {
        self.kadmin(&format!("cpw -randkey {name}"));
    }

    pub fn keytab(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{}.keytab", name.replace('/', "_")))
    }

    pub fn krb5_conf(&self) -> PathBuf {
        self.dir.join("krb5.conf")
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("kdc.log")).unwrap_or_default()
    }

    /// A JAAS section logging `principal` in from its keytab, as ZooKeeper's docs show it.
    pub fn jaas_section(&self, section: &str, principal: &str) -> String {
        format!(
            "{section} {{\n  com.sun.security.auth.module.Krb5LoginModule required\n  \
             useKeyTab=true\n  keyTab=\"{}\"\n  storeKey=true\n  useTicketCache=false\n  \
             principal=\"{principal}@{REALM}\";\n}};\n",
            self.keytab(principal).display()
        )
    }
}

impl Drop for Kdc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
