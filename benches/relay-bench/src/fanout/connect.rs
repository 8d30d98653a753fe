//! How the fanout's clients connect: every subscriber with its inbox, then
//! the publisher, each first sending what its relay needs (a Redis
//! `SUBSCRIBE`, a NATS `CONNECT`, a WebSocket upgrade, a member's
//! identifying frame) or, against a session relay, shaking hands as its
//! member. Nothing is published here.

use std::net::SocketAddr;

use mio::net::TcpStream;
use rustls::ClientConnection;

use super::super::inbox::{Opener, StreamInbox};
use super::super::sessions::{self, SessionRoster};
use super::super::wire::{Checking, Protocol, Wire};
use super::super::{LoadError, Options, Verify, connect_after};
use super::Fanout;

/// The subscribers' sockets with their inboxes (and TLS, with
/// `--subscribe-tls`), and the publisher's socket.
pub(super) type Connected = (
    Vec<(TcpStream, StreamInbox, Option<Box<ClientConnection>>)>,
    TcpStream,
);

impl Fanout<'_> {
    /// Connects every subscriber (subscriber `index` to `subscribe_at(index)`),
    /// each with its inbox, and then the publisher.
    pub(super) fn connect_all(
        options: &Options,
        wire: &Wire,
        subscribe_at: impl Fn(usize) -> SocketAddr,
    ) -> Result<Connected, LoadError> {
        let greeted = wire.greets_with_a_line();
        let request = wire.subscribe_request();
        let mut inboxes = Vec::with_capacity(options.clients);
        let mut targets = Vec::with_capacity(options.clients);
        for index in 0..options.clients {
            let (inbox, greeting) = Fanout::inbox(options, wire, index)?;
            inboxes.push(inbox);
            targets.push((
                subscribe_at(index),
                greeting.unwrap_or_else(|| request.clone()),
            ));
        }
        // A NATS server pings each connection about two seconds after it
        // connects: they are connected all at once, each answering its
        // ping before the run, so no ping lands among the records.
        let streams: Vec<Result<TcpStream, LoadError>> = if options.subscribe_tls {
            Vec::new()
        } else if greeted {
            std::thread::scope(|scope| {
                let connecting: Vec<_> = targets
                    .iter()
                    .map(|(addr, greeting)| {
                        scope.spawn(move || connect_after(*addr, greeting, true))
                    })
                    .collect();
                connecting
                    .into_iter()
                    .map(|thread| {
                        thread.join().unwrap_or_else(|_| {
                            Err(LoadError::Setup("a connecting thread panicked".into()))
                        })
                    })
                    .collect()
            })
        } else {
            targets
                .iter()
                .map(|(addr, greeting)| connect_after(*addr, greeting, false))
                .collect()
        };
        let subscribers = if options.subscribe_tls {
            targets
                .iter()
                .zip(inboxes)
                .map(|((addr, greeting), inbox)| {
                    let (stream, tls) = super::tls::connect(*addr, greeting)?;
                    Ok((stream, inbox, Some(tls)))
                })
                .collect::<Result<_, LoadError>>()?
        } else {
            streams
                .into_iter()
                .zip(inboxes)
                .map(|(stream, inbox)| Ok((stream?, inbox, None)))
                .collect::<Result<_, LoadError>>()?
        };
        let publisher = connect_after(options.addr, wire.publisher_greeting(), greeted)?;
        Ok((subscribers, publisher))
    }

    /// Session mode: every subscriber, then the publisher, connects and
    /// shakes hands as its member; each subscriber reads what it receives
    /// in its own session (every counter, one frame in `--sample` opened,
    /// or every frame with `--verify-all`), and the publisher seals in its
    /// own.
    pub(super) fn connect_sessions(
        options: &Options,
        wire: &mut Wire,
        roster: &SessionRoster,
    ) -> Result<Connected, LoadError> {
        let connect = |index| sessions::connect(options.addr, roster, index, options.setup_timeout);
        let open_all = options.verify == Verify::All;
        let checking = if open_all {
            Checking::Every
        } else {
            Checking::Counters
        };
        let mut subscribers = Vec::with_capacity(options.clients);
        for index in 0..options.clients {
            let (stream, established) = connect(index + 1)?;
            let reader = wire
                .session_reader(established, checking)
                .ok_or_else(|| LoadError::Options("not a session relay's codec".into()))?;
            let sample = options.verify.sample();
            let inbox =
                StreamInbox::for_session(wire.record_len(), sample, open_all, reader, index as u64);
            subscribers.push((stream, inbox, None));
        }
        let (publisher, established) = connect(0)?;
        wire.start_session(established.session);
        Ok((subscribers, publisher))
    }

    /// Subscriber `index`'s inbox, and in members mode the frame that
    /// identifies it (its member's key is the members file's `index + 1`).
    fn inbox(
        options: &Options,
        wire: &Wire,
        index: usize,
    ) -> Result<(StreamInbox, Option<Vec<u8>>), LoadError> {
        let open_all = options.verify == Verify::All;
        let sample = options.verify.sample();
        let member = match &options.protocol {
            Protocol::Members(roster) => roster.member(index + 1),
            _ => None,
        };
        let reader = member.and_then(|(_, key)| wire.member_reader(key));
        if options.events {
            // It says `/hello eaxchat/1` (and joins its rooms) first.
            let mut sealer = Wire::new(&options.protocol, options.size)?;
            let greeting = super::super::events_greeting(options, &mut sealer);
            let inbox = StreamInbox::new(wire.record_len(), 0, sample, open_all)
                .with_events(options.extra_rooms);
            return Ok((inbox, Some(greeting)));
        }
        let spread = options.subscribe_at.len() > 1;
        if let (Protocol::Eaxchat(_), true) = (&options.protocol, spread) {
            // Each relay of the cluster seals for its own subscribers:
            // records are opened, one in `sample`, not compared.
            let own = Wire::new(&options.protocol, options.size)?;
            let opener = Opener::Relay(Box::new(own));
            let inbox =
                StreamInbox::for_member(wire.record_len(), sample, open_all, opener, index as u64);
            return Ok((inbox, None));
        }
        let Some(reader) = reader.transpose()? else {
            let inbox = StreamInbox::new(
                wire.record_len(),
                wire.subscribe_reply_len(),
                sample,
                open_all,
            )
            .with_frame_prefix(wire.frame_prefix());
            return Ok((inbox, None));
        };
        let mut reader = reader;
        let greeting = reader.greeting();
        let opener = Opener::Member(Box::new(reader));
        let inbox =
            StreamInbox::for_member(wire.record_len(), sample, open_all, opener, index as u64);
        Ok((inbox, Some(greeting)))
    }
}
