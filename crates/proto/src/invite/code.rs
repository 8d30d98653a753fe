//! Short invite codes a person can read aloud: `N-word-word-word`, like
//! magic-wormhole's `7-crossover-clockwork`, joined by a password-
//! authenticated key exchange (SPAKE2, the `spake2` crate, Ed25519 group,
//! interoperable with python-spake2).
//!
//! `N` (1 to 999, the *nameplate*) finds the invite; the three words, from
//! [`WORDS`] (256 words, written for eaxchat), are 24 bits of secret. The
//! whole code text is the SPAKE2 password. An eavesdropper who records a
//! join learns nothing it can test offline: each guess needs a live
//! exchange with the relay, and the relay counts every exchange against
//! the invite's tries ([`crate::invite`]'s caller bounds them), so `t`
//! tries succeed with probability at most `t / 2^24`.
//!
//! ```text
//! client                                                   relay
//!   0x06: nameplate(2, big-endian) ‖ SPAKE2 message A(33) ─▶ finds the invite, counts a try
//!   ◀─ 0x07: SPAKE2 message B(33) ‖ relay key(32) ‖ invite id(8)
//!   both: psk = SPAKE2 key (32 bytes)
//!   0x03: the ordinary invite join (Noise IKpsk1) with that psk ─▶
//!   ◀─ 0x02 welcome, or 0x7f refusal (a wrong code)
//! ```
//!
//! The relay key in 0x07 is not authenticated by itself: the join that
//! follows is, since message 1 decrypts only under the relay's secret and
//! the psk, which only the side that knew the code can have.

use std::fmt;

use spake2::{Ed25519Group, Identity, Password, Spake2};
use zeroize::Zeroizing;

use super::{ID_LEN, Invite, InviteError, InviteId, InviteSecret};
use crate::session::{Kind, PublicKey, SessionError, decode_line, encode_line};

/// The word list: 256 words, one byte each.
pub const WORDS: [&str; 256] = [
    "acorn", "adult", "agent", "alarm", "album", "alley", "amber", "anchor", "angle", "ankle",
    "apple", "apron", "arena", "armor", "arrow", "atlas", "attic", "autumn", "badge", "bagel",
    "baker", "bamboo", "banjo", "barrel", "basket", "beacon", "beaver", "bench", "berry", "bison",
    "blanket", "blossom", "bobcat", "bonus", "border", "bottle", "bounce", "bracket", "branch",
    "breeze", "brick", "bridge", "bronze", "brook", "bubble", "bucket", "buffalo", "bugle",
    "bundle", "butter", "button", "cabin", "cactus", "camel", "canal", "candle", "canoe", "canyon",
    "carbon", "cargo", "carpet", "castle", "cedar", "cement", "chalk", "chapel", "cherry", "chess",
    "chimney", "cinema", "circle", "citrus", "clover", "cobalt", "coconut", "comet", "copper",
    "coral", "cotton", "cousin", "cowboy", "coyote", "crater", "crayon", "credit", "cricket",
    "crystal", "cupboard", "curtain", "cushion", "dagger", "daisy", "dancer", "debut", "delta",
    "denim", "desert", "diamond", "dinner", "dolphin", "domino", "donkey", "dragon", "drawer",
    "dream", "drift", "drum", "eagle", "easel", "echo", "elbow", "elder", "ember", "engine",
    "falcon", "feather", "fence", "ferry", "fiddle", "finch", "flame", "flannel", "flute",
    "forest", "fossil", "fountain", "fox", "frost", "galaxy", "garden", "garlic", "gazelle",
    "gecko", "ginger", "glacier", "globe", "goblet", "golden", "gorilla", "granite", "grape",
    "gravel", "guitar", "hammer", "harbor", "harvest", "hazel", "helmet", "heron", "hickory",
    "honey", "hornet", "husky", "igloo", "indigo", "island", "ivory", "jacket", "jaguar",
    "jasmine", "jelly", "jersey", "jigsaw", "jungle", "kayak", "kernel", "kettle", "kitten",
    "koala", "ladder", "lagoon", "lantern", "laptop", "lemon", "lentil", "lilac", "linen",
    "lizard", "lobster", "locket", "lotus", "lumber", "magnet", "mango", "maple", "marble",
    "meadow", "melon", "mesa", "meteor", "mirror", "mitten", "monkey", "mosaic", "muffin",
    "mustard", "napkin", "nectar", "needle", "nickel", "noodle", "nutmeg", "oasis", "oatmeal",
    "ocean", "olive", "onion", "orbit", "orchid", "otter", "oyster", "paddle", "palace", "panda",
    "panther", "parrot", "pastel", "peach", "peanut", "pebble", "pelican", "pepper", "piano",
    "pickle", "pigeon", "pillow", "pine", "pirate", "planet", "plaza", "pocket", "pony", "poppy",
    "potato", "prairie", "pretzel", "puffin", "pumpkin", "puzzle", "quartz", "quiver", "rabbit",
    "raccoon", "radar", "radish", "raft", "rainbow", "raven", "ribbon", "river", "robin", "rocket",
    "saddle", "salmon", "sandal", "satchel",
];

/// Bytes of a SPAKE2 (Ed25519) message: a side byte and a point.
pub const PAKE_MESSAGE_LEN: usize = 33;

/// The body of a code start line (kind 0x06).
pub const CODE_START_LEN: usize = 2 + PAKE_MESSAGE_LEN;

/// The body of a code reply line (kind 0x07).
pub const CODE_REPLY_LEN: usize = PAKE_MESSAGE_LEN + 32 + ID_LEN;

/// The highest nameplate.
pub const NAMEPLATE_MAX: u16 = 999;

const ID_CLIENT: &[u8] = b"eaxchat/invite/code/client";
const ID_RELAY: &[u8] = b"eaxchat/invite/code/relay";

/// A short code: a nameplate and three words.
#[derive(Clone, PartialEq, Eq)]
pub struct InviteCode {
    /// Which invite (1 to [`NAMEPLATE_MAX`]).
    pub nameplate: u16,
    words: [u8; 3],
}

impl InviteCode {
    /// A new code with nameplate `nameplate` and three random words.
    pub fn generate(nameplate: u16) -> Result<InviteCode, InviteError> {
        let mut words = [0; 3];
        getrandom::fill(&mut words).map_err(|_| InviteError::NoRandomness)?;
        Ok(InviteCode { nameplate, words })
    }

    /// Parses `N-word-word-word` (any case, spaces around it ignored).
    pub fn parse(text: &str) -> Result<InviteCode, InviteError> {
        let text = text.trim().to_ascii_lowercase();
        let mut parts = text.split('-');
        let nameplate: u16 = parts
            .next()
            .and_then(|n| n.parse().ok())
            .filter(|n| (1..=NAMEPLATE_MAX).contains(n))
            .ok_or(InviteError::BadCode)?;
        let mut words = [0; 3];
        for word in &mut words {
            let text = parts.next().ok_or(InviteError::BadCode)?;
            let at = WORDS
                .iter()
                .position(|w| *w == text)
                .ok_or(InviteError::BadCode)?;
            *word = u8::try_from(at).map_err(|_| InviteError::BadCode)?;
        }
        if parts.next().is_some() {
            return Err(InviteError::BadCode);
        }
        Ok(InviteCode { nameplate, words })
    }

    /// The SPAKE2 password: the code's text.
    fn password(&self) -> Password {
        Password::new(self.to_string().as_bytes())
    }
}

impl fmt::Display for InviteCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.nameplate)?;
        self.words
            .iter()
            .try_for_each(|&w| write!(f, "-{}", WORDS[usize::from(w)]))
    }
}

impl fmt::Debug for InviteCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "InviteCode({}-…)", self.nameplate)
    }
}

/// The client's side of a code join, waiting for the relay's reply.
pub struct CodeJoin {
    pake: Spake2<Ed25519Group>,
}

impl CodeJoin {
    /// Starts a code join: the state and the code start line (kind 0x06,
    /// `\n` included).
    pub fn start(code: &InviteCode) -> Result<(CodeJoin, Vec<u8>), SessionError> {
        let (pake, message) = Spake2::<Ed25519Group>::start_a(
            &code.password(),
            &Identity::new(ID_CLIENT),
            &Identity::new(ID_RELAY),
        );
        let mut body = code.nameplate.to_be_bytes().to_vec();
        body.extend_from_slice(&message);
        Ok((CodeJoin { pake }, encode_line(Kind::CodeStart, &body)?))
    }

    /// Reads the relay's reply (a code reply, or a refusal, which is
    /// [`SessionError::Refused`]) and gives the invite to join with: the
    /// relay key and invite id it sent, and the SPAKE2 key as the secret.
    /// `addr` is the relay's address, as the joiner dialled it.
    pub fn finish(self, line: &[u8], addr: &str) -> Result<Invite, SessionError> {
        let line = decode_line(line)?;
        match line.kind() {
            Kind::CodeReply => {}
            Kind::Refusal => {
                return Err(SessionError::Refused {
                    text: crate::sanitize::sanitize(line.body()),
                    pinned: crate::session::Fingerprint::of(&[0; 32]),
                    relay: None,
                });
            }
            got => {
                return Err(SessionError::UnexpectedKind {
                    expected: Kind::CodeReply,
                    got,
                });
            }
        }
        let body = line.body();
        let (message, rest) =
            body.split_at_checked(PAKE_MESSAGE_LEN)
                .ok_or(SessionError::BodyLength {
                    kind: Kind::CodeReply,
                    len: body.len(),
                })?;
        let (relay, id) = rest.split_at_checked(32).ok_or(SessionError::BodyLength {
            kind: Kind::CodeReply,
            len: body.len(),
        })?;
        let key =
            Zeroizing::new(self.pake.finish(message).map_err(|_| {
                SessionError::Noise("the relay's code message is malformed".into())
            })?);
        let secret: [u8; 32] = key
            .as_slice()
            .try_into()
            .map_err(|_| SessionError::Noise("the code key is not 32 bytes".into()))?;
        Ok(Invite {
            addr: addr.to_owned(),
            relay: PublicKey::from_slice(relay)?,
            id: InviteId(id.try_into().map_err(|_| SessionError::BodyLength {
                kind: Kind::CodeReply,
                len: body.len(),
            })?),
            secret: InviteSecret::from_bytes(secret),
        })
    }
}

/// A code start line's nameplate and SPAKE2 message (the body of a kind
/// 0x06 line, checked for its length by [`decode_line`]).
pub fn split_code_start(body: &[u8]) -> Option<(u16, &[u8])> {
    let (nameplate, message) = body.split_at_checked(2)?;
    Some((u16::from_be_bytes(nameplate.try_into().ok()?), message))
}

/// The relay's side: answers a code start's SPAKE2 `message` for the
/// invite `id` whose code is `code`, as the relay `relay`. Returns the
/// reply line (kind 0x07, `\n` included) and the secret the join that
/// follows must prove (it matches the client's only if the codes match).
pub fn answer_code(
    code: &InviteCode,
    relay: &PublicKey,
    id: &InviteId,
    message: &[u8],
) -> Result<(Vec<u8>, InviteSecret), SessionError> {
    let (pake, reply) = Spake2::<Ed25519Group>::start_b(
        &code.password(),
        &Identity::new(ID_CLIENT),
        &Identity::new(ID_RELAY),
    );
    let key = Zeroizing::new(
        pake.finish(message)
            .map_err(|_| SessionError::Noise("the code message is malformed".into()))?,
    );
    let secret: [u8; 32] = key
        .as_slice()
        .try_into()
        .map_err(|_| SessionError::Noise("the code key is not 32 bytes".into()))?;
    let mut body = reply;
    body.extend_from_slice(relay.as_bytes());
    body.extend_from_slice(&id.0);
    Ok((
        encode_line(Kind::CodeReply, &body)?,
        InviteSecret::from_bytes(secret),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::invite::{read_join, split_join};
    use crate::session::StaticSecret;
    use std::collections::HashSet;

    #[test]
    fn the_word_list_has_256_distinct_words() {
        assert_eq!(WORDS.iter().collect::<HashSet<_>>().len(), 256);
        assert!(
            WORDS
                .iter()
                .all(|w| w.bytes().all(|b| b.is_ascii_lowercase()))
        );
    }

    #[test]
    fn codes_round_trip_and_bad_ones_are_refused() {
        let code = InviteCode::generate(7).unwrap();
        let text = code.to_string();
        assert!(
            text.starts_with("7-") && text.split('-').count() == 4,
            "{text}"
        );
        assert_eq!(
            InviteCode::parse(&format!(" {} ", text.to_uppercase())).unwrap(),
            code
        );
        for bad in [
            "",
            "7",
            "7-acorn-acorn",
            "0-acorn-acorn-acorn",
            "1000-acorn-acorn-acorn",
            "7-acorn-acorn-nope",
            "7-acorn-acorn-acorn-acorn",
            "x-acorn-acorn-acorn",
        ] {
            assert_eq!(InviteCode::parse(bad), Err(InviteError::BadCode), "{bad:?}");
        }
    }

    #[test]
    fn the_right_code_gives_both_sides_one_secret_and_a_join() {
        let relay = StaticSecret::generate().unwrap();
        let device = StaticSecret::generate().unwrap();
        let code = InviteCode::generate(42).unwrap();
        let id = InviteId([3; 8]);
        let (client, start) = CodeJoin::start(&code).unwrap();
        let start = decode_line(&start).unwrap();
        assert_eq!(start.kind(), Kind::CodeStart);
        let (nameplate, message) = split_code_start(start.body()).unwrap();
        assert_eq!(nameplate, 42);
        let (reply, at_relay) = answer_code(&code, relay.public_key(), &id, message).unwrap();
        let invite = client.finish(&reply, "h:1").unwrap();
        assert_eq!(invite.secret, at_relay);
        assert_eq!((invite.relay, invite.id), (*relay.public_key(), id));
        let (_, join) = invite.join(&device).unwrap();
        let (_, message) = split_join(&join).unwrap();
        assert!(read_join(&relay, &at_relay, &message).is_ok());
    }

    #[test]
    fn a_wrong_code_gives_another_secret() {
        let relay = StaticSecret::generate().unwrap();
        let code = InviteCode::generate(5).unwrap();
        let mut wrong = code.clone();
        wrong.words[2] = wrong.words[2].wrapping_add(1);
        let (client, start) = CodeJoin::start(&wrong).unwrap();
        let start = decode_line(&start).unwrap();
        let (_, message) = split_code_start(start.body()).unwrap();
        let (reply, at_relay) =
            answer_code(&code, relay.public_key(), &InviteId([1; 8]), message).unwrap();
        assert_ne!(client.finish(&reply, "h:1").unwrap().secret, at_relay);
        assert!(answer_code(&code, relay.public_key(), &InviteId([1; 8]), &[0; 33]).is_err());
    }
}
