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

/// In members mode (as in session mode) a read's runs are sealed into a
/// block of the relay's kept arena (`arena.rs`): while they wait to be
/// written the block cannot be taken back, and once they are all written
/// it can, so a later read is sealed into the same memory without an
/// allocation.
#[test]
fn a_written_reads_block_is_taken_back_by_a_later_one() {
    use crate::members::Members;
    use crate::roster::Roster;
    use eaxchat_proto::nonce::Nonces;

    let key = |byte: u8| Key::from_bytes(&[byte; 16]).expect("a 16-byte key");
    let list: String = (1..=3u8)
        .map(|byte| format!("m{byte} {}\n", key(byte).to_hex()))
        .collect();
    let members = Members::parse(list.as_bytes(), std::path::Path::new("members.txt"))
        .expect("a members file");
    let roster = Roster::with_nonces(&members, Nonces::from_seed([3; 32]));
    let mut relay: Relay<Vec<u8>> =
        Relay::with_members(roster, Limits::default(), Instant::now(), SystemTime::now());
    relay.set_chat(ChatConfig::quiet());
    let mut ciphers: Vec<Cipher> = (1..=3u8)
        .map(|byte| Cipher::new(&key(byte)).expect("cipher"))
        .collect();
    let ids: Vec<ConnId> = ciphers
        .iter_mut()
        .map(|cipher| {
            let id = relay.admit(Vec::new()).expect("admitted");
            relay.receive(id, &sealed(cipher, b""));
            id
        })
        .collect();
    sweep(&mut relay);

    relay.receive(ids[0], &sealed(&mut ciphers[0], b"one"));
    assert!(relay.peers.iter().any(|(_, peer)| !peer.outbox.is_empty()));
    // One byte more than what is left after the runs: only the block's
    // start, taken back, has it.
    let block = relay.arena.current().expect("a block");
    let needed = block.capacity() + 1;
    assert!(!block.try_reclaim(needed), "its runs are still queued");

    sweep(&mut relay);
    let block = relay.arena.current().expect("a block");
    assert!(block.try_reclaim(needed), "every run was written");

    // And the next read is sealed there, delivered as ever.
    relay.receive(ids[1], &sealed(&mut ciphers[1], b"two"));
    assert_eq!(relay.arena.kept(), 1, "no new block");
    sweep(&mut relay);
    let lines = relay.peers[ids[2]]
        .io
        .split(|&b| b == b'\n')
        .filter(|line| !line.is_empty())
        .count();
    assert_eq!(lines, 2, "m3 got both messages");
}
