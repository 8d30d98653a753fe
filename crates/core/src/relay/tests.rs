//! Unit tests of the relay's bookkeeping, through its own fields.

use bytes::BytesMut;

use super::*;
use eaxchat_proto::key::Key;

fn relay() -> Relay<Vec<u8>> {
    let key = Key::from_bytes(&[7; 16]).expect("a 16-byte key");
    Relay::new(
        Cipher::new(&key).expect("cipher"),
        Limits::default(),
        Instant::now(),
        SystemTime::now(),
    )
}

/// A client's cipher under the relay's key.
fn client() -> Cipher {
    let key = Key::from_bytes(&[7; 16]).expect("a 16-byte key");
    Cipher::new(&key).expect("cipher")
}

/// A fresh frame of `text` (the relay refuses one sent twice).
fn sealed(client: &mut Cipher, text: &[u8]) -> Vec<u8> {
    let mut line = BytesMut::new();
    client.seal_into(text, &mut line);
    line.to_vec()
}

fn sweep(relay: &mut Relay<Vec<u8>>) {
    while let Some(id) = relay.next_waiting() {
        assert_eq!(relay.flush(id), Flush::Drained);
    }
}

/// Connections that are served once and leave, while no connection
/// already written gets anything, leave entries no fan-out passes: they
/// must not pile up, and dropping them must not drop a live one.
#[test]
fn churned_connections_leave_no_pile_of_stale_entries() {
    let mut relay = relay();
    let mut client = client();
    // `sender` is written once, then only sends: it keeps a live entry
    // in the written list that no fan-out passes.
    let sender = relay.admit(Vec::new()).expect("admitted");
    let first = relay.admit(Vec::new()).expect("admitted");
    relay.receive(first, &sealed(&mut client, b"hello"));
    sweep(&mut relay);
    relay.close(first, CloseReason::PeerClosed);
    assert!(relay.remove(first).is_some());

    let mut newcomers = Vec::new();
    for _ in 0..10_000 {
        for _ in 0..3 {
            newcomers.push(relay.admit(Vec::new()).expect("admitted"));
        }
        relay.receive(sender, &sealed(&mut client, b"hello"));
        sweep(&mut relay);
        for id in newcomers.drain(..) {
            relay.close(id, CloseReason::PeerClosed);
            assert!(relay.remove(id).is_some());
        }
        assert!(relay.sweep.written_entries() <= 2 * relay.peers.len() + 64 + 3);
    }

    // The sender's entry survived: a frame for it is still written.
    let last = relay.admit(Vec::new()).expect("admitted");
    relay.receive(last, &sealed(&mut client, b"hello"));
    sweep(&mut relay);
    let got = relay.peers[sender]
        .io
        .iter()
        .filter(|&&b| b == b'\n')
        .count();
    assert_eq!(got, 2, "the sender got the first frame and the last");
    // `last`'s first frame was its arrival: it was sent the history said
    // before it came, the newest 100 messages after a notice.
    assert_eq!(relay.stats().frames_out, 1 + 30_000 + 1 + 1 + 100);
}
