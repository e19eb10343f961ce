//! Log volume: enough data to make the zero-filler run many times and the log roll over to new
//! segments, under a steady write load; everything survives kill -9. corral's log only (the
//! ZooKeeper target skips the segment checks but still runs the writes).

mod common;

use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_megabytes_roll_segments_and_survive_kill_9() {
    timed(180, async {
        let mut s = TestServer::start(ServerOpts::new().cfg("jute.maxbuffer", 2 << 20)).await;
        let c = s.client().await;
        c.create("/big", b"", &anyone()).await.unwrap();
        // ~80 MiB of log: more than one 64 MiB segment, many zero-fill steps.
        let payload = vec![b'z'; 100 * 1024];
        let mut last = Vec::new();
        for i in 0..820u32 {
            let mut v = payload.clone();
            v[..4].copy_from_slice(&i.to_be_bytes());
            c.set_data("/big", &v, None).await.unwrap();
            last = v;
        }
        let st = c.check_stat("/big").await.unwrap().unwrap();
        assert_eq!(st.version, 820);
        if !is_zookeeper() {
            let mntr = s.four_letter("mntr").await;
            assert!(mntr.contains("corral_log_fill_stalls\t0"), "{mntr}");
        }
        drop(c);
        s.kill9();
        if !is_zookeeper() {
            let segments = std::fs::read_dir(s.data_dir().join("wal")).unwrap().count();
            assert!(segments >= 2, "the log rolled over ({segments} segments)");
        }
        s.start_again().await;
        let c = s.client().await;
        let (data, st) = c.get_data("/big").await.unwrap();
        assert_eq!(st.version, 820);
        assert!(data == last, "last value survives");
        c.set_data("/big", b"after", None).await.unwrap();
    })
    .await
}
