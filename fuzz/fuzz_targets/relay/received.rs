//! The `relay` fuzz target's reading half: what a client's socket got,
//! opened line by line and matched with what the model says it is owed,
//! in order; a seed receiver's paced frames checked for their size and
//! their spacing; no nonce twice.

use super::*;

/// Opens the complete lines `client` got since the last check and matches
/// the messages in them (one per line, or joined by `\n` in a seed
/// receiver's paced frame) with what it is owed, in order; returns how many
/// lines there were.
pub(crate) fn check_received(
    client: &mut Client,
    sink: &Sink,
    cipher: &mut Cipher,
    gap: Duration,
) -> u64 {
    let bytes = &sink.bytes;
    let mut lines = 0;
    while let Some(end) = bytes[client.parsed..].iter().position(|&b| b == b'\n') {
        let start = client.parsed;
        let line = &bytes[start..start + end];
        client.parsed += end + 1;
        let plaintext = cipher.open(line).expect("the relay sends frames that open");
        let mut messages = 0;
        for message in plaintext.split(|&b| b == b'\n') {
            let want = client.expected.get(client.received);
            assert_eq!(Some(message), want.map(|w| &w[..]), "unexpected message");
            client.received += 1;
            messages += 1;
        }
        assert!(
            messages == 1 || client.was_seed,
            "{messages} messages in one line for a newline client"
        );
        if client.paced_from.is_some_and(|from| start >= from) {
            assert!(
                end < SEED_READ_LEN || messages == 1,
                "a joined seed frame of {} bytes is more than one read",
                end + 1
            );
            if let Some(last) = client.last_paced {
                assert!(
                    sink.written_at(start) >= last + gap,
                    "a seed frame written within the gap"
                );
            }
            client.last_paced = Some(sink.written_at(start + end));
        }
        let nonce = line[..NONCE_CHARS].try_into().expect("a frame is longer");
        assert!(client.nonces.insert(nonce), "nonce repeated");
        lines += 1;
    }
    lines
}
