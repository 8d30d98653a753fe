//! Bystanders (`--bystanders N --bystander-rooms K`): connections that sit
//! in other rooms of an eaxchat relay while a fanout runs in the default
//! room, to measure that rooms do not slow the fan-out and that nothing
//! leaks between them.
//!
//! Each bystander sends one `/join bench-other-I` (I = its index modulo
//! K) and waits for the relay's reply before the run starts. During the
//! run none of them may receive a byte: the publisher's room is not
//! theirs. Whatever reaches one is counted as unexpected.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use eaxchat_proto::cipher::Cipher;

use super::{LoadError, Options, Protocol};

/// Connections held in other rooms for the length of a run.
pub struct Bystanders {
    streams: Vec<TcpStream>,
}

impl Bystanders {
    /// Connects `options.bystanders` connections and puts each in its
    /// room; `Ok(None)` when there are none to open.
    pub fn join(options: &Options) -> Result<Option<Bystanders>, LoadError> {
        if options.bystanders == 0 {
            return Ok(None);
        }
        let Protocol::Eaxchat(key) = &options.protocol else {
            return Err(LoadError::Options(
                "--bystanders needs an eaxchat relay with a shared key (its rooms)".into(),
            ));
        };
        let mut cipher = Cipher::new(key).map_err(LoadError::Io)?;
        let rooms = options.bystander_rooms.max(1);
        let deadline = Instant::now() + options.setup_timeout;
        let mut streams = Vec::with_capacity(options.bystanders);
        let mut line = BytesMut::new();
        for i in 0..options.bystanders {
            let mut stream =
                TcpStream::connect(options.addr).map_err(|error| LoadError::Connect {
                    addr: options.addr,
                    error,
                })?;
            line.clear();
            cipher.seal_into(
                format!("/join bench-other-{}", i % rooms).as_bytes(),
                &mut line,
            );
            stream.write_all(&line).map_err(LoadError::Io)?;
            streams.push(stream);
        }
        // Every bystander's reply, so that each is in its room before the
        // publisher starts.
        for stream in &mut streams {
            let left = deadline.saturating_duration_since(Instant::now());
            let reply = read_line(stream, left.max(Duration::from_millis(1)))?;
            let text = cipher
                .open(&reply)
                .map_err(|_| LoadError::Setup("a bystander's /join reply did not open".into()))?;
            if !text.starts_with(b"* ") {
                return Err(LoadError::Setup(format!(
                    "a bystander's /join got {:?}, not a notice",
                    String::from_utf8_lossy(text)
                )));
            }
            stream.set_nonblocking(true).map_err(LoadError::Io)?;
        }
        Ok(Some(Bystanders { streams }))
    }

    /// How many there are.
    pub fn len(&self) -> usize {
        self.streams.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.streams.is_empty()
    }

    /// Bytes the bystanders received since they joined: 0 unless a room
    /// leaked. A bystander the relay closed counts one byte.
    pub fn received(&mut self) -> u64 {
        let mut total = 0;
        let mut buf = [0u8; 4096];
        for stream in &mut self.streams {
            loop {
                match stream.read(&mut buf) {
                    Ok(0) => {
                        total += 1;
                        break;
                    }
                    Ok(n) => total += n as u64,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(_) => {
                        total += 1;
                        break;
                    }
                }
            }
        }
        total
    }
}

/// Reads one `\n`-terminated line (without it), waiting at most `wait`.
fn read_line(stream: &mut TcpStream, wait: Duration) -> Result<Vec<u8>, LoadError> {
    stream.set_read_timeout(Some(wait)).map_err(LoadError::Io)?;
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    loop {
        match stream.read(&mut byte) {
            Ok(0) => {
                return Err(LoadError::Setup(
                    "the relay closed a bystander before it joined its room".into(),
                ));
            }
            Ok(_) if byte[0] == b'\n' => return Ok(line),
            Ok(_) => line.push(byte[0]),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                return Err(LoadError::Setup(
                    "a bystander got no reply to its /join in time".into(),
                ));
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(LoadError::Io(e)),
        }
    }
}
