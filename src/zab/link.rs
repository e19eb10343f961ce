//! Link events between ensemble members, as the write machine sees them: which connection to
//! each member is live (its generation), so that a message meant for a connection that has since
//! been replaced is dropped rather than delivered on its successor (Zab needs each learner-leader
//! exchange to be one FIFO stream). `server::quorum` produces the events; the write machine
//! filters them through `Gens` in the order it handles them, and names the generation it
//! believes live when it sends.

use std::collections::HashMap;

use super::peer::Msg;
use super::Sid;

/// What happens on the links, in order per member.
#[derive(Debug)]
pub enum LinkEvent {
    Up { sid: Sid, gen: u64 },
    Down { sid: Sid, gen: u64 },
    Msg { sid: Sid, gen: u64, msg: Msg },
}

/// The consumer's side of generations: which connection of each member is live, as far as the
/// events it has handled say.
#[derive(Default)]
pub struct Gens {
    live: HashMap<Sid, u64>,
}

/// An event for the consumer, stale generations filtered out.
#[derive(Debug, PartialEq, Eq)]
pub enum Link {
    /// A new connection to `sid`; if `replaced`, the previous one is gone (report that first).
    Up {
        sid: Sid,
        replaced: bool,
    },
    Down {
        sid: Sid,
    },
    Msg {
        sid: Sid,
        msg: Msg,
    },
}

impl Gens {
    pub fn handle(&mut self, ev: LinkEvent) -> Option<Link> {
        match ev {
            LinkEvent::Up { sid, gen } => Some(Link::Up {
                sid,
                replaced: self.live.insert(sid, gen).is_some(),
            }),
            LinkEvent::Down { sid, gen } => {
                if self.live.get(&sid) == Some(&gen) {
                    self.live.remove(&sid);
                    Some(Link::Down { sid })
                } else {
                    None
                }
            }
            LinkEvent::Msg { sid, gen, msg } => {
                (self.live.get(&sid) == Some(&gen)).then_some(Link::Msg { sid, msg })
            }
        }
    }

    /// The live generation to send on, if any.
    pub fn gen(&self, sid: Sid) -> Option<u64> {
        self.live.get(&sid).copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stale_generations_are_dropped() {
        let mut g = Gens::default();
        assert_eq!(
            g.handle(LinkEvent::Up { sid: 2, gen: 1 }),
            Some(Link::Up {
                sid: 2,
                replaced: false
            })
        );
        assert_eq!(
            g.handle(LinkEvent::Up { sid: 2, gen: 5 }),
            Some(Link::Up {
                sid: 2,
                replaced: true
            })
        );
        // The old connection's last words and its end arrive late: ignored.
        assert_eq!(
            g.handle(LinkEvent::Msg {
                sid: 2,
                gen: 1,
                msg: Msg::Ping
            }),
            None
        );
        assert_eq!(g.handle(LinkEvent::Down { sid: 2, gen: 1 }), None);
        assert_eq!(g.gen(2), Some(5));
        assert_eq!(
            g.handle(LinkEvent::Msg {
                sid: 2,
                gen: 5,
                msg: Msg::Ping
            }),
            Some(Link::Msg {
                sid: 2,
                msg: Msg::Ping
            })
        );
        assert_eq!(
            g.handle(LinkEvent::Down { sid: 2, gen: 5 }),
            Some(Link::Down { sid: 2 })
        );
        assert_eq!(g.gen(2), None);
    }
}
