//! Recognising a four-letter word and deciding whether it may run. A 4lw shares the client
//! port: the first four bytes of a fresh connection, which a real client sends as its int32
//! length prefix, are compared with the known words, and `4lw.commands.whitelist` decides
//! which of them answer (ZooKeeper's `FourLetterCommands`).

use crate::config::Config;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FourLetter {
    Conf,
    Cons,
    Crst,
    Dirs,
    Dump,
    Envi,
    Gtmk,
    Ruok,
    Stmk,
    Srst,
    Srvr,
    Stat,
    Wchc,
    Wchp,
    Wchs,
    Mntr,
    Isro,
    Hash,
}

impl FourLetter {
    pub const ALL: [FourLetter; 18] = [
        FourLetter::Conf,
        FourLetter::Cons,
        FourLetter::Crst,
        FourLetter::Dirs,
        FourLetter::Dump,
        FourLetter::Envi,
        FourLetter::Gtmk,
        FourLetter::Ruok,
        FourLetter::Stmk,
        FourLetter::Srst,
        FourLetter::Srvr,
        FourLetter::Stat,
        FourLetter::Wchc,
        FourLetter::Wchp,
        FourLetter::Wchs,
        FourLetter::Mntr,
        FourLetter::Isro,
        FourLetter::Hash,
    ];

    pub fn name(self) -> &'static str {
        match self {
            FourLetter::Conf => "conf",
            FourLetter::Cons => "cons",
            FourLetter::Crst => "crst",
            FourLetter::Dirs => "dirs",
            FourLetter::Dump => "dump",
            FourLetter::Envi => "envi",
            FourLetter::Gtmk => "gtmk",
            FourLetter::Ruok => "ruok",
            FourLetter::Stmk => "stmk",
            FourLetter::Srst => "srst",
            FourLetter::Srvr => "srvr",
            FourLetter::Stat => "stat",
            FourLetter::Wchc => "wchc",
            FourLetter::Wchp => "wchp",
            FourLetter::Wchs => "wchs",
            FourLetter::Mntr => "mntr",
            FourLetter::Isro => "isro",
            FourLetter::Hash => "hash",
        }
    }

    /// Recognises a command from the first four bytes of a connection (ZooKeeper reads
    /// them as the int32 length prefix and checks it against the known words). Exact,
    /// case-sensitive bytes.
    pub fn from_len_prefix(bytes: [u8; 4]) -> Option<FourLetter> {
        FourLetter::ALL
            .into_iter()
            .find(|c| c.name().as_bytes() == bytes)
    }
}

/// ZooKeeper's whitelist rule (`FourLetterCommands.isEnabled`): `srvr` always, the rest
/// only when `4lw.commands.whitelist` names them or is `*`.
pub fn is_allowed(cmd: FourLetter, cfg: &Config) -> bool {
    cfg.four_letter_whitelist.allows(cmd.name())
}

/// The whole reply to a known but non-whitelisted command.
pub fn refusal(cmd: FourLetter) -> String {
    format!(
        "{} is not executed because it is not in the whitelist.\n",
        cmd.name()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::FourLetterWhitelist;

    fn all_allowed() -> Config {
        Config {
            four_letter_whitelist: FourLetterWhitelist::All,
            ..Config::default()
        }
    }

    #[test]
    fn names_and_prefixes() {
        for cmd in FourLetter::ALL {
            let b = cmd.name().as_bytes();
            let prefix = [b[0], b[1], b[2], b[3]];
            assert_eq!(FourLetter::from_len_prefix(prefix), Some(cmd));
        }
        assert_eq!(FourLetter::from_len_prefix(*b"RUOK"), None);
        assert_eq!(FourLetter::from_len_prefix([0, 0, 0, 40]), None);
        // The telnet "interrupt process + do timing mark" sequence is no command.
        assert_eq!(FourLetter::from_len_prefix([0xff, 0xf4, 0xff, 0xfd]), None);
        // The names agree with the list the config validates the whitelist against.
        let names: Vec<&str> = FourLetter::ALL.iter().map(|c| c.name()).collect();
        assert_eq!(names, crate::config::FOUR_LETTER_WORDS);
    }

    #[test]
    fn whitelist() {
        let cfg = Config::default();
        assert!(is_allowed(FourLetter::Srvr, &cfg));
        for cmd in FourLetter::ALL
            .into_iter()
            .filter(|c| *c != FourLetter::Srvr)
        {
            assert!(!is_allowed(cmd, &cfg), "{cmd:?}");
        }
        assert!(FourLetter::ALL
            .into_iter()
            .all(|c| is_allowed(c, &all_allowed())));
        let cfg = Config {
            four_letter_whitelist: FourLetterWhitelist::parse("ruok, mntr"),
            ..Config::default()
        };
        assert!(is_allowed(FourLetter::Ruok, &cfg));
        assert!(is_allowed(FourLetter::Mntr, &cfg));
        assert!(is_allowed(FourLetter::Srvr, &cfg));
        assert!(!is_allowed(FourLetter::Stat, &cfg));
        assert_eq!(
            refusal(FourLetter::Ruok),
            "ruok is not executed because it is not in the whitelist.\n"
        );
    }
}
