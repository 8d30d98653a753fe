//! A stand-in for a relay that speaks sessions, in the test: it reads
//! chat's line 1 with `eaxchat_proto::session::Responder`, accepts the
//! members it knows (line 2 carries the name it stamps) and refuses the
//! rest, then opens what chat sends and seals what the test sends back,
//! each under that one connection's session. A key request (kind 0x04)
//! before line 1 is answered with the relay's key (kind 0x05), as the
//! relay does for trust on first use, and noted; a test that wants to
//! answer it otherwise takes the first line raw. Every wait is bounded.

use eaxchat_test_support as util;

use std::io::{ErrorKind, Write};
use std::net::{SocketAddr, TcpListener};
use std::path::Path;

use bytes::BytesMut;
use eaxchat_client::identity::generate_identity;
use eaxchat_proto::session::{
    Established, Kind, PublicKey, Responder, Session, StaticSecret, decode_line, relay_key_line,
};
pub use util::Lines;
use util::WAIT;

/// A listener in the test with a relay identity and a members list.
pub struct SessionRelay {
    listener: TcpListener,
    pub secret: StaticSecret,
    members: Vec<(PublicKey, String)>,
}

impl SessionRelay {
    /// A relay with a new identity that knows `members`.
    pub fn start(members: &[(PublicKey, &str)]) -> SessionRelay {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        listener
            .set_nonblocking(true)
            .expect("non-blocking listener");
        SessionRelay {
            listener,
            secret: StaticSecret::generate().expect("relay identity"),
            members: members
                .iter()
                .map(|(key, name)| (*key, (*name).to_owned()))
                .collect(),
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.listener.local_addr().expect("local addr")
    }

    /// The relay's public key.
    pub fn public(&self) -> PublicKey {
        *self.secret.public_key()
    }

    /// Waits (bounded) for chat to connect and reads its line 1; a key
    /// request before it is answered with the relay's key, as the relay
    /// does, and noted in [`Hello::asked_key`].
    pub fn accept_hello(&self) -> Hello {
        let mut hello = self.accept_first_line();
        let asked = decode_line(&hello.line).is_ok_and(|line| line.kind() == Kind::KeyRequest);
        if asked {
            let answer = relay_key_line(&self.public());
            hello.lines.stream.write_all(&answer).expect("send the key");
            hello.line = hello
                .lines
                .try_line(WAIT)
                .unwrap_or_else(|| panic!("chat sent no hello after its key within {WAIT:?}"));
            hello.asked_key = true;
        }
        hello
    }

    /// Whether a connection is waiting to be accepted, looking once: after
    /// chat has exited, whether it ever connected.
    pub fn was_dialed(&self) -> bool {
        match self.listener.accept() {
            Ok(_) => true,
            Err(e) if e.kind() == ErrorKind::WouldBlock => false,
            Err(e) => panic!("accept: {e}"),
        }
    }

    /// Waits (bounded) for chat to connect and reads its first line, which
    /// is left unanswered even if it is a key request.
    pub fn accept_first_line(&self) -> Hello {
        let mut lines = Lines::new(util::accept_within(&self.listener, WAIT, "chat"));
        let line = lines
            .try_line(WAIT)
            .unwrap_or_else(|| panic!("chat sent no handshake line within {WAIT:?}"));
        Hello {
            lines,
            line,
            asked_key: false,
        }
    }

    /// Accepts chat's next connection as the member its key names.
    pub fn accept(&self) -> SessionConn {
        let hello = self.accept_hello();
        let responder = Responder::read_hello(&self.secret, &hello.line)
            .unwrap_or_else(|e| panic!("line 1 did not read: {e}"));
        let name = self
            .members
            .iter()
            .find_map(|(key, name)| (key == responder.initiator_key()).then(|| name.clone()))
            .unwrap_or_else(|| panic!("an unknown key: {:?}", responder.initiator_key()));
        let (welcome, Established { session, .. }) = responder.accept(&name).expect("accept");
        let mut lines = hello.lines;
        lines.stream.write_all(&welcome).expect("send line 2");
        SessionConn {
            lines,
            session,
            asked_key: hello.asked_key,
        }
    }
}

/// Chat's line 1 (or first line), read, not yet answered.
pub struct Hello {
    pub lines: Lines,
    pub line: Vec<u8>,
    /// Whether chat asked for the relay's key before its line 1.
    pub asked_key: bool,
}

impl Hello {
    /// Answers with `line` (a refusal), then closes, as the relay does.
    pub fn answer_and_close(mut self, line: &[u8]) {
        self.lines.stream.write_all(line).expect("send the answer");
    }
}

/// One connection from chat, after its handshake.
pub struct SessionConn {
    pub lines: Lines,
    pub session: Session,
    /// Whether chat asked for the relay's key before its line 1.
    pub asked_key: bool,
}

impl SessionConn {
    /// Opens chat's next frame (waiting at most [`WAIT`]).
    pub fn recv(&mut self) -> Vec<u8> {
        let line = self
            .lines
            .try_line(WAIT)
            .unwrap_or_else(|| panic!("chat sent nothing within {WAIT:?}"));
        self.session
            .open(&line)
            .unwrap_or_else(|e| panic!("chat sent a frame that does not open: {e}"))
            .to_vec()
    }

    /// Seals `plaintext` as the relay's next frame; returns the line sent.
    pub fn send(&mut self, plaintext: &[u8]) -> BytesMut {
        let mut line = BytesMut::new();
        self.session
            .seal_into(plaintext, &mut line)
            .expect("seal a frame");
        self.lines.stream.write_all(&line).expect("send a frame");
        line
    }
}

/// A new identity file in `dir`, as `chat keygen` writes it; returns its
/// path and public key.
pub fn identity_file(dir: &Path, name: &str) -> (String, PublicKey) {
    let path = dir.join(format!("{name}.identity"));
    let secret = generate_identity(&path).expect("write an identity file");
    (
        path.to_str().expect("UTF-8 path").to_owned(),
        *secret.public_key(),
    )
}
