//! The relay's web listener spoken to as a monitoring system would: its
//! address from the relay's log, a plain `GET` (bounded by [`WAIT`]), and
//! one sample of `/metrics`.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};

use crate::relay::{RelayProcess, WAIT};

/// The web listener's address (`--web`), from the line the relay logs at
/// start (`… the chat page on http://ADDR/ …`).
pub fn web_address(relay: &RelayProcess) -> SocketAddr {
    let log = relay.log();
    log.lines()
        .find_map(|line| line.split("the chat page on http://").nth(1))
        .and_then(|rest| rest.split('/').next())
        .and_then(|addr| addr.parse().ok())
        .unwrap_or_else(|| panic!("no web listener address in\n{log}"))
}

/// `GET path` on `addr` (plain HTTP/1.1, `Connection: close`): the body
/// of a 200 response; panics on any other.
pub fn http_get(addr: SocketAddr, path: &str) -> String {
    let mut stream = TcpStream::connect_timeout(&addr, WAIT).expect("connect to the web listener");
    stream
        .set_read_timeout(Some(WAIT))
        .expect("set a read timeout");
    let request = format!("GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n");
    stream
        .write_all(request.as_bytes())
        .expect("send the request");
    let mut response = String::new();
    stream
        .read_to_string(&mut response)
        .expect("read the response");
    let Some((head, body)) = response.split_once("\r\n\r\n") else {
        panic!("no whole response head: {response:?}");
    };
    assert!(head.starts_with("HTTP/1.1 200"), "GET {path}: {head}");
    body.to_owned()
}

/// The value of the unlabelled sample `name` in a `/metrics` body.
pub fn metric(body: &str, name: &str) -> u64 {
    body.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|value| value.parse().ok())
        .unwrap_or_else(|| panic!("no sample {name} in\n{body}"))
}
