//! Mutual TLS between ensemble members (`sslQuorum=true`, `ssl.quorum.*` stores): an
//! ensemble forms and replicates over it, and a member whose certificate comes from another CA
//! is kept out (it cannot vote, follow, or receive data), while the others keep serving.

mod common;

use std::time::{Duration, Instant};

use common::ensemble::{serial, Ensemble, EnsembleOpts};
use common::pki::Pki;
use common::*;
use zookeeper_client as zk;

/// Three voters whose links are mutual TLS, member `i` with key store `dir/m<i>.pem`.
fn tls_opts(dir: &std::path::Path, pki: &Pki) -> EnsembleOpts {
    let mut o = EnsembleOpts::voters(3)
        .cfg("sslQuorum", "true")
        .cfg("ssl.quorum.keyStore.type", "PEM")
        .cfg(
            "ssl.quorum.trustStore.location",
            dir.join("ca.pem").display(),
        )
        .cfg("ssl.quorum.trustStore.type", "PEM");
    for i in 0..3 {
        let store = pki.server_store(&format!("m{i}.pem"));
        o = o.member_cfg(i, "ssl.quorum.keyStore.location", store.display());
    }
    o
}

#[tokio::test(flavor = "multi_thread")]
async fn an_ensemble_forms_over_mutual_tls_and_keeps_a_member_from_another_ca_out() {
    let _serial = serial().await;
    let dir = make_temp_dir().join("pki");
    std::fs::create_dir_all(&dir).unwrap();
    let pki = Pki::new(&dir, "ca");
    let mut ens = Ensemble::start(tls_opts(&dir, &pki)).await;
    let leader = ens.wait_leader(Duration::from_secs(60)).await;

    // Writes replicate over the TLS links.
    let c = ens.client(leader).await;
    c.create(
        "/q",
        b"over-tls",
        &zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all()),
    )
    .await
    .unwrap();
    for i in 0..3 {
        let ci = ens.client(i).await;
        ci.sync("/").await.unwrap();
        assert_eq!(
            ci.get_data("/q").await.unwrap().0,
            b"over-tls",
            "member {i}"
        );
    }

    // A follower comes back with a certificate from another CA: the others refuse its links.
    let outsider = (0..3).find(|&i| i != leader).unwrap();
    ens.kill9(outsider);
    let other = Pki::new(&dir, "other-ca");
    other.server_store(&format!("m{outsider}.pem")); // same file the member's zoo.cfg names
    ens.restart(outsider).await;
    let deadline = Instant::now() + Duration::from_secs(8);
    while Instant::now() < deadline {
        assert!(
            ens.mode(outsider).await.is_none(),
            "a member with a foreign certificate joined:\n{}",
            ens.log_tail(outsider)
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    // The two others still form a quorum and take writes the outsider never sees.
    let live = (0..3).find(|&i| i != outsider).unwrap();
    let c = ens.client(live).await;
    c.set_data("/q", b"without-it", None).await.unwrap();
    assert!(ens.mode(outsider).await.is_none());
    if !is_zookeeper() {
        let logs = ens.log_tails();
        assert!(
            logs.contains("quorum TLS handshake failed"),
            "the refusals are logged:\n{logs}"
        );
    }
}
