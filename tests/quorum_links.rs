//! The links between ensemble members (`corral::server::quorum`) on real loopback sockets: three
//! members, each on its own glommio executor, connect pairwise, carry messages in order, notice a
//! member that dies, take it back when it returns, and refuse strangers. (corral only: no
//! ZooKeeper counterpart; its quorum protocol is not corral's.)

use std::collections::BTreeMap;
use std::io::Write;
use std::net::SocketAddr;
use std::os::fd::{FromRawFd, IntoRawFd};
use std::time::{Duration, Instant};

use async_channel::{Receiver, Sender};
use corral::server::quorum::{Gens, Link, LinkEvent, Links};
use corral::zab::peer::Msg;
use corral::zab::Sid;
use glommio::LocalExecutorBuilder;

enum Cmd {
    Send(Sid, Msg),
    Stop,
}

struct Member {
    cmds: Sender<Cmd>,
    links: Receiver<Link>,
    thread: glommio::ExecutorJoinHandle<()>,
}

/// Starts member `me` on its own executor, serving `listener`. Events pass through `Gens`, as
/// the write core will see them; `Cmd::Send` goes out on the live generation.
fn start(me: Sid, listener: std::net::TcpListener, members: BTreeMap<Sid, SocketAddr>) -> Member {
    start_with_redial(me, listener, members, None)
}

/// `start`, with another back-off between dials than the default.
fn start_with_redial(
    me: Sid,
    listener: std::net::TcpListener,
    members: BTreeMap<Sid, SocketAddr>,
    redial: Option<Duration>,
) -> Member {
    let (cmd_tx, cmd_rx) = async_channel::unbounded::<Cmd>();
    let (link_tx, link_rx) = async_channel::unbounded::<Link>();
    let thread = LocalExecutorBuilder::default()
        .name(&format!("member{me}"))
        // A small ring: several executors share this process's locked-memory limit.
        .io_memory(64 << 10)
        .spawn(move || async move {
            // SAFETY: the fd comes from a live std listener this thread now owns.
            let listener =
                unsafe { glommio::net::TcpListener::from_raw_fd(listener.into_raw_fd()) };
            let (ev_tx, ev_rx) = async_channel::unbounded::<LinkEvent>();
            let links = match redial {
                Some(r) => Links::start_with_redial(me, listener, members, ev_tx, r),
                None => Links::start(me, listener, members, ev_tx),
            };
            let gens = std::rc::Rc::new(std::cell::RefCell::new(Gens::default()));
            let g = gens.clone();
            let forward = glommio::spawn_local(async move {
                while let Ok(ev) = ev_rx.recv().await {
                    let link = g.borrow_mut().handle(ev);
                    if let Some(link) = link {
                        if link_tx.send(link).await.is_err() {
                            return;
                        }
                    }
                }
            });
            while let Ok(cmd) = cmd_rx.recv().await {
                match cmd {
                    Cmd::Send(to, msg) => {
                        if let Some(gen) = gens.borrow().gen(to) {
                            links.send(to, gen, &msg);
                        }
                    }
                    Cmd::Stop => break,
                }
            }
            links.shutdown().await;
            drop(forward);
        })
        .unwrap();
    Member {
        cmds: cmd_tx,
        links: link_rx,
        thread,
    }
}

impl Member {
    /// The next event, within 10 s.
    fn next(&self) -> Link {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(l) = self.links.try_recv() {
                return l;
            }
            assert!(Instant::now() < deadline, "no link event within 10 s");
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// Skips events until one matches.
    fn expect(&self, want: impl Fn(&Link) -> bool, what: &str) -> Link {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            assert!(Instant::now() < deadline, "never saw {what}");
            let l = self.next();
            if want(&l) {
                return l;
            }
        }
    }

    fn send(&self, to: Sid, msg: Msg) {
        self.cmds.send_blocking(Cmd::Send(to, msg)).unwrap();
    }

    fn stop(self) {
        let _ = self.cmds.send_blocking(Cmd::Stop);
        self.thread.join().unwrap();
    }
}

fn listener() -> (std::net::TcpListener, SocketAddr) {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let a = l.local_addr().unwrap();
    (l, a)
}

#[test]
fn members_connect_carry_messages_in_order_and_survive_a_restart() {
    let ls: Vec<_> = (0..3).map(|_| listener()).collect();
    let members: BTreeMap<Sid, SocketAddr> = (1..=3).map(|s| (s, ls[s as usize - 1].1)).collect();
    let mut ls = ls.into_iter();
    let m1 = start(1, ls.next().unwrap().0, members.clone());
    let m2 = start(2, ls.next().unwrap().0, members.clone());
    let m3 = start(3, ls.next().unwrap().0, members.clone());
    for (m, others) in [(&m1, [2, 3]), (&m2, [1, 3]), (&m3, [1, 2])] {
        let mut up: Vec<Sid> = (0..2)
            .map(|_| match m.next() {
                Link::Up { sid, .. } => sid,
                other => panic!("expected Up, got {other:?}"),
            })
            .collect();
        up.sort();
        assert_eq!(up, others);
    }

    // FIFO, both directions of one link, with payloads.
    for i in 0..500u64 {
        m3.send(
            1,
            Msg::Proposal {
                zxid: i,
                txn: bytes::Bytes::from(vec![i as u8; (i % 50) as usize]),
            },
        );
        m1.send(3, Msg::Ack { zxid: i });
    }
    for i in 0..500u64 {
        assert_eq!(
            m1.next(),
            Link::Msg {
                sid: 3,
                msg: Msg::Proposal {
                    zxid: i,
                    txn: bytes::Bytes::from(vec![i as u8; (i % 50) as usize]),
                }
            }
        );
        assert_eq!(
            m3.next(),
            Link::Msg {
                sid: 1,
                msg: Msg::Ack { zxid: i }
            }
        );
    }

    // Member 2 dies: both others see its link go down.
    m2.stop();
    for m in [&m1, &m3] {
        m.expect(|l| *l == Link::Down { sid: 2 }, "2 down");
    }
    // It comes back on the same address: both links come up again and carry messages.
    let again = std::net::TcpListener::bind(members[&2]).unwrap();
    let m2 = start(2, again, members.clone());
    for m in [&m1, &m3] {
        m.expect(|l| matches!(l, Link::Up { sid: 2, .. }), "2 up again");
    }
    m2.expect(|l| matches!(l, Link::Up { sid: 1, .. }), "2 sees 1");
    m1.send(2, Msg::Ping);
    m2.expect(
        |l| {
            *l == Link::Msg {
                sid: 1,
                msg: Msg::Ping,
            }
        },
        "ping from 1",
    );

    // A stranger (sid 9) and a lower sid dialing the wrong way are both turned away, and the
    // links between members do not notice.
    for sid in [9u64, 2] {
        let mut s = std::net::TcpStream::connect(members[&3]).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut hello = bytes::BytesMut::new();
        corral::zab::wire::encode_hello(corral::zab::wire::Hello { version: 1, sid }, &mut hello);
        s.write_all(&hello).unwrap();
        let mut rest = Vec::new();
        use std::io::Read;
        // Member 3 answers with its own greeting, then closes (EOF, not the read timeout).
        assert!(s.read_to_end(&mut rest).is_ok(), "sid {sid} was kept");
        assert!(rest.len() <= 24, "more than a greeting came back: {rest:?}");
    }
    // Member 3's link to 2 was never touched: a message from 2 arrives with no Up or Down
    // for 2 before it.
    m2.send(3, Msg::Sync { id: 8 });
    loop {
        match m3.next() {
            Link::Msg {
                sid: 2,
                msg: Msg::Sync { id: 8 },
            } => break,
            l @ (Link::Up { sid: 2, .. } | Link::Down { sid: 2 }) => {
                panic!("a stranger disturbed the link to 2: {l:?}")
            }
            _ => {}
        }
    }
    m3.send(1, Msg::Sync { id: 7 });
    m1.expect(
        |l| {
            *l == Link::Msg {
                sid: 3,
                msg: Msg::Sync { id: 7 },
            }
        },
        "3 still talks to 1",
    );
    for m in [m1, m2, m3] {
        m.stop();
    }
}

#[test]
fn a_restarted_member_with_a_low_sid_knocks_and_is_dialed_back_at_once() {
    // A back-off of a minute between dials: within the 10 s `expect` allows, only member 1's
    // knock on restart can make 2 and 3 dial it again.
    let redial = Some(Duration::from_secs(60));
    let ls: Vec<_> = (0..3).map(|_| listener()).collect();
    let members: BTreeMap<Sid, SocketAddr> = (1..=3).map(|s| (s, ls[s as usize - 1].1)).collect();
    let mut ls = ls.into_iter();
    let m1 = start_with_redial(1, ls.next().unwrap().0, members.clone(), redial);
    let m2 = start_with_redial(2, ls.next().unwrap().0, members.clone(), redial);
    let m3 = start_with_redial(3, ls.next().unwrap().0, members.clone(), redial);
    for m in [&m2, &m3] {
        m.expect(|l| matches!(l, Link::Up { sid: 1, .. }), "1 up");
    }
    m1.stop();
    for m in [&m2, &m3] {
        m.expect(|l| *l == Link::Down { sid: 1 }, "1 down");
    }
    // Their dialers tried member 1 once when the link broke and now wait out the back-off.
    std::thread::sleep(Duration::from_millis(200));
    let again = std::net::TcpListener::bind(members[&1]).unwrap();
    let m1 = start_with_redial(1, again, members.clone(), redial);
    for m in [&m2, &m3] {
        m.expect(
            |l| matches!(l, Link::Up { sid: 1, .. }),
            "1 up again after its knock",
        );
    }
    m3.send(1, Msg::Ping);
    m1.expect(
        |l| {
            *l == Link::Msg {
                sid: 3,
                msg: Msg::Ping,
            }
        },
        "ping from 3",
    );
    for m in [m1, m2, m3] {
        m.stop();
    }
}
