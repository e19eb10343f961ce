//! Torn writes: the last record of a log segment is cut short or corrupted at every byte
//! offset; each time the server recovers to the last complete record, keeps serving, and what it
//! writes afterwards survives another restart. corral's log format only: against Apache
//! ZooKeeper (`CORRAL_TEST_TARGET=zookeeper`) there is no such file and the test returns early.

mod common;

use std::path::PathBuf;

use common::*;

/// The log segment files of a stopped server, oldest first.
fn segments(s: &TestServer) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(s.data_dir().join("wal"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    v.sort();
    v
}

/// Offsets where the records of a segment end (format: docs/design/storage.md).
fn record_ends(bytes: &[u8]) -> Vec<usize> {
    let mut ends = Vec::new();
    let mut pos = 4096;
    loop {
        let len = u32::from_be_bytes(bytes[pos..pos + 4].try_into().unwrap()) as usize;
        if len == 0 {
            return ends;
        }
        pos += 16 + len;
        ends.push(pos);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recovery_stops_at_the_last_complete_record() {
    if is_zookeeper() {
        return;
    }
    timed(240, async {
        let mut s = TestServer::start_default().await;
        let c = s.client().await;
        for i in 0..4 {
            c.create(&format!("/n{i}"), format!("v{i}").as_bytes(), &anyone())
                .await
                .unwrap();
        }
        drop(c);
        s.kill9();
        let seg = segments(&s).pop().unwrap();
        let pristine = std::fs::read(&seg).unwrap();
        // The operator's view of the same log.
        let dump = std::process::Command::new(env!("CARGO_BIN_EXE_corral"))
            .arg("dump-log")
            .arg(&seg)
            .output()
            .unwrap();
        assert!(dump.status.success());
        let text = String::from_utf8_lossy(&dump.stdout);
        assert!(text.contains("CreateSession { timeout_ms: "), "{text}");
        assert!(text.contains("path: \"/n3\""), "{text}");
        assert!(text.contains("end of log at offset"), "{text}");
        let ends = record_ends(&pristine);
        // Records: createSession, /n0.. /n3 (the client's closeSession may or may not be in).
        let last_create = ends[4];
        let start = ends[3];
        let mut cases = Vec::new();
        for off in start..last_create {
            cases.push((off, false)); // the file ends at `off` (zeros after)
            if (off - start).is_multiple_of(3) {
                cases.push((off, true)); // one byte flipped at `off`
            }
        }
        for (round, (off, flip)) in cases.into_iter().enumerate() {
            let mut bytes = pristine.clone();
            if flip {
                bytes[off] ^= 0xa5;
            } else {
                for b in &mut bytes[off..] {
                    *b = 0;
                }
            }
            std::fs::write(&seg, &bytes).unwrap();
            s.start_again().await;
            let c = s.client().await;
            let what = format!("offset {off} {}", if flip { "flipped" } else { "cut" });
            for i in 0..3 {
                let (data, _) = c
                    .get_data(&format!("/n{i}"))
                    .await
                    .unwrap_or_else(|e| panic!("{what}: /n{i}: {e}"));
                assert_eq!(data, format!("v{i}").as_bytes(), "{what}");
            }
            assert!(
                c.check_stat("/n3").await.unwrap().is_none(),
                "{what}: torn record applied"
            );
            // Keeps serving, and the new write lands after the cut and survives a restart.
            c.create("/after", format!("{round}").as_bytes(), &anyone())
                .await
                .unwrap_or_else(|e| panic!("{what}: write after recovery: {e}"));
            drop(c);
            s.kill9();
            s.start_again().await;
            let c = s.client().await;
            assert_eq!(
                c.get_data("/after").await.unwrap().0,
                format!("{round}").as_bytes(),
                "{what}: write after recovery lost"
            );
            drop(c);
            s.kill9();
            // Next case starts from the pristine log again.
            for p in segments(&s) {
                if p != seg {
                    std::fs::remove_file(p).unwrap();
                }
            }
        }
    })
    .await
}
