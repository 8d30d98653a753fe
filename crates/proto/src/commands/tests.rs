//! The grammar and its replies, table-driven: every command, every bad
//! argument, and each reply as the sender reads it.

use super::*;

const MAX: usize = 20;

fn name(text: &str) -> Name {
    Name::new(text).expect("a valid test name")
}

fn room(text: &str) -> RoomName {
    RoomName::new(text.as_bytes()).expect("a valid test room")
}

/// `parses! { input => expected, ... }`: each input parsed with
/// `max_text` = [`MAX`] gives exactly the expected result.
macro_rules! parses {
    ($($input:expr => $expected:expr),+ $(,)?) => {
        $(
            assert_eq!(parse($input, MAX), $expected, "input {:?}", String::from_utf8_lossy($input));
        )+
    };
}

fn cmd(command: Command<'_>) -> Result<Input<'_>, CommandError> {
    Ok(Input::Command(command))
}

fn text_in(text: &[u8]) -> Result<Input<'_>, CommandError> {
    Ok(Input::Text(text))
}

fn err(error: CommandError) -> Result<Input<'static>, CommandError> {
    Err(error)
}

#[test]
fn text_and_escapes() {
    parses! {
        b"" => text_in(b""),
        b"hello" => text_in(b"hello"),
        b" /join x" => text_in(b" /join x"),
        b"//" => text_in(b"/"),
        b"//join x" => text_in(b"/join x"),
        b"///" => text_in(b"//"),
        b"\xff/x" => text_in(b"\xff/x"),
    }
}

#[test]
fn every_command() {
    parses! {
        b"/join lobby" => cmd(Command::Join(room("lobby"))),
        b"/join #Lobby" => cmd(Command::Join(room("lobby"))),
        b"/JOIN \t dev.ops_1-x \r\n" => cmd(Command::Join(room("dev.ops_1-x"))),
        b"/rooms" => cmd(Command::Rooms),
        b"/rooms  " => cmd(Command::Rooms),
        b"/who" => cmd(Command::Who),
        b"/Who\r\n" => cmd(Command::Who),
        b"/me waves" => cmd(Command::Me(b"waves")),
        b"/me  waves  at  you " => cmd(Command::Me(b"waves  at  you ")),
        b"/me \xe2\x9c\x8b" => cmd(Command::Me(b"\xe2\x9c\x8b")),
        b"/msg bob hi there" => cmd(Command::Msg { to: name("bob"), text: b"hi there" }),
        b"/msg\tBob.2\t\thi" => cmd(Command::Msg { to: name("Bob.2"), text: b"hi" }),
        b"/nick carol" => cmd(Command::Nick(name("carol"))),
        b"/nick carol\n" => cmd(Command::Nick(name("carol"))),
        b"/help" => cmd(Command::Help),
        b"/quit" => cmd(Command::Quit),
        b"/hello eaxchat/1" => cmd(Command::Hello(Protocol::V1)),
    }
}

#[test]
fn every_bad_argument() {
    use CommandError as E;
    use CommandKind as K;
    let twenty_one = [b'x'; MAX + 1];
    let mut long_me = b"/me ".to_vec();
    long_me.extend_from_slice(&twenty_one);
    let mut long_msg = b"/msg bob ".to_vec();
    long_msg.extend_from_slice(&twenty_one);
    parses! {
        b"/" => err(E::UnknownCommand { word: Some(String::new()) }),
        b"/ join x" => err(E::UnknownCommand { word: Some(String::new()) }),
        b"/foo" => err(E::UnknownCommand { word: Some("foo".into()) }),
        b"/joinx lobby" => err(E::UnknownCommand { word: Some("joinx".into()) }),
        b"/\x1b[2J" => err(E::UnknownCommand { word: None }),
        b"/averyveryverylongword" => err(E::UnknownCommand { word: None }),
        b"/join" => err(E::MissingArgument(K::Join)),
        b"/join   " => err(E::MissingArgument(K::Join)),
        b"/join #" => err(E::MalformedRoom(RoomNameError::Empty)),
        b"/join a b" => err(E::UnexpectedArgument(K::Join)),
        b"/join ##a" => err(E::MalformedRoom(RoomNameError::BadCharacter { position: 1 })),
        b"/join caf\xc3\xa9" => err(E::MalformedRoom(RoomNameError::BadCharacter { position: 4 })),
        b"/join abcdefghijabcdefghijabcdefghijabc" => err(E::MalformedRoom(RoomNameError::TooLong { bytes: 33 })),
        b"/rooms all" => err(E::UnexpectedArgument(K::Rooms)),
        b"/who me" => err(E::UnexpectedArgument(K::Who)),
        b"/me" => err(E::MissingArgument(K::Me)),
        b"/me \t " => err(E::MissingArgument(K::Me)),
        &long_me => err(E::TooLong { command: K::Me, max: MAX }),
        b"/msg" => err(E::MissingArgument(K::Msg)),
        b"/msg bob" => err(E::MissingArgument(K::Msg)),
        b"/msg bob   " => err(E::MissingArgument(K::Msg)),
        b"/msg b\xffb hi" => err(E::MalformedName(NameError::BadCharacter { position: 2 })),
        b"/msg b!b hi" => err(E::MalformedName(NameError::BadCharacter { position: 2 })),
        b"/msg 0123456789abcdef0123456789abcdef hi" => err(E::MalformedName(NameError::LooksLikeKey)),
        &long_msg => err(E::TooLong { command: K::Msg, max: MAX }),
        b"/nick" => err(E::MissingArgument(K::Nick)),
        b"/nick a b" => err(E::UnexpectedArgument(K::Nick)),
        b"/nick #carol" => err(E::MalformedName(NameError::BadCharacter { position: 1 })),
        b"/nick abcdefghijabcdefghijabcdefghijabc" => err(E::MalformedName(NameError::TooLong { chars: 33 })),
        b"/help me" => err(E::UnexpectedArgument(K::Help)),
        b"/quit now" => err(E::UnexpectedArgument(K::Quit)),
        b"/hello" => err(E::MissingArgument(K::Hello)),
        b"/hello eaxchat/2" => err(E::UnsupportedProtocol),
        b"/hello EAXCHAT/1" => err(E::UnsupportedProtocol),
        b"/hello eaxchat/1 json" => err(E::UnexpectedArgument(K::Hello)),
    }
}

#[test]
fn text_at_the_limit_is_accepted() {
    let mut me = b"/me ".to_vec();
    me.extend_from_slice(&[b'y'; MAX]);
    assert_eq!(parse(&me, MAX), cmd(Command::Me(&[b'y'; MAX])));
}

#[test]
fn replies_read_as_the_user_sees_them() {
    let replies = [
        (&b"/foo"[..], "error: unknown command /foo (try /help)"),
        (b"/\x07", "error: unknown command (try /help)"),
        (
            b"/join",
            "error: /join needs an argument: /join ROOM [--e2e]",
        ),
        (b"/who x", "error: too many arguments: /who"),
        (
            b"/join a!",
            "error: bad room name: character 2 is not allowed; a room name is 1 to 32 \
             of A-Z a-z 0-9 _ - . after an optional #",
        ),
        (b"/nick", "error: /nick needs an argument: /nick NAME"),
        (
            b"/msg x! hi",
            "error: bad name: character 2 of the name is not one of A-Z a-z 0-9 _ - .; \
             a name is 1 to 32 of A-Z a-z 0-9 _ - .",
        ),
        (
            b"/me aaaaaaaaaaaaaaaaaaaaaaaaa",
            "error: /me text too long: at most 20 bytes",
        ),
        (
            b"/hello irc",
            "error: unknown protocol; this relay speaks eaxchat/1",
        ),
    ];
    for (input, reply) in replies {
        let error = parse(input, MAX).expect_err("an error");
        assert_eq!(error.to_string(), reply);
    }
}

#[test]
fn escaped_text_parses_back() {
    for text in [&b""[..], b"hi", b"/", b"/join x", b"//x", b" /x"] {
        let mut escaped = Vec::new();
        escape_text(text, &mut escaped);
        assert_eq!(parse(&escaped, MAX), text_in(text));
    }
}

#[test]
fn the_room_commands() {
    let parse = |text: &'static [u8]| super::parse(text, 100);
    let dev = RoomName::new(b"dev").expect("room");
    assert_eq!(parse(b"/part"), Ok(Input::Command(Command::Part(None))));
    assert_eq!(
        parse(b"/part #Dev "),
        Ok(Input::Command(Command::Part(Some(dev.clone()))))
    );
    assert_eq!(
        parse(b"/in dev hello there"),
        Ok(Input::Command(Command::In {
            room: dev.clone(),
            rest: b"hello there"
        }))
    );
    assert_eq!(
        parse(b"/in #dev"),
        Ok(Input::Command(Command::In {
            room: dev.clone(),
            rest: b""
        }))
    );
    assert_eq!(
        parse(b"/in dev /me waves"),
        Ok(Input::Command(Command::In {
            room: dev.clone(),
            rest: b"/me waves"
        }))
    );
    assert_eq!(parse(b"/in dev /in lobby hi"), Err(CommandError::NestedIn));
    assert_eq!(
        parse(b"/in"),
        Err(CommandError::MissingArgument(CommandKind::In))
    );
    assert!(matches!(
        parse(b"/in d!v hi"),
        Err(CommandError::MalformedRoom(_))
    ));
    assert_eq!(parse(b"/topic"), Ok(Input::Command(Command::Topic(None))));
    assert_eq!(
        parse(b"/topic ship it "),
        Ok(Input::Command(Command::Topic(Some(b"ship it "))))
    );
    let long = [b'x'; TOPIC_MAX + 1];
    let mut topic = b"/topic ".to_vec();
    topic.extend_from_slice(&long);
    assert_eq!(
        super::parse(&topic, 10_000),
        Err(CommandError::TooLong {
            command: CommandKind::Topic,
            max: TOPIC_MAX
        })
    );
}

#[test]
fn history_pages() {
    let parse = |text: &'static [u8]| super::parse(text, 100);
    let page = |before, limit| Ok(Input::Command(Command::History { before, limit }));
    assert_eq!(parse(b"/history"), page(None, DEFAULT_HISTORY_PAGE));
    assert_eq!(
        parse(b"/history 120"),
        page(Some(120), DEFAULT_HISTORY_PAGE)
    );
    assert_eq!(parse(b"/history 120 7\r\n"), page(Some(120), 7));
    assert_eq!(
        parse(b"/history 18446744073709551615 100"),
        page(Some(u64::MAX), MAX_HISTORY_PAGE)
    );
    for bad in [
        &b"/history -1"[..],
        b"/history 1 101",
        b"/history x",
        b"/history 18446744073709551616",
        b"/history 1 2 3",
    ] {
        let refused = super::parse(bad, 100).expect_err("refused");
        assert!(
            refused.to_string().contains("/history"),
            "{refused} for {:?}",
            String::from_utf8_lossy(bad)
        );
    }
}

#[test]
fn end_to_end_commands() {
    let parse = |text: &'static [u8]| super::parse(text, 100);
    let dev = RoomName::new(b"dev").expect("room");
    assert_eq!(
        parse(b"/join #dev --e2e"),
        Ok(Input::Command(Command::JoinE2e(dev.clone())))
    );
    assert_eq!(
        parse(b"/join dev --e3e"),
        Err(CommandError::UnexpectedArgument(CommandKind::Join))
    );
    assert_eq!(
        parse(b"/mls dev AAEC"),
        Ok(Input::Command(Command::Mls {
            room: dev.clone(),
            message: vec![0, 1, 2]
        }))
    );
    assert_eq!(
        parse(b"/mls dev AA!C"),
        Err(CommandError::BadBase64(CommandKind::Mls))
    );
    assert_eq!(
        parse(b"/mls dev"),
        Err(CommandError::MissingArgument(CommandKind::Mls))
    );
    assert_eq!(
        parse(b"/keypackage AwQF"),
        Ok(Input::Command(Command::KeyPackage(vec![3, 4, 5])))
    );
    assert_eq!(
        parse(b"/keypackages bob"),
        Ok(Input::Command(Command::KeyPackages(name("bob"))))
    );
    assert_eq!(
        parse(b"/groupinfo dev"),
        Ok(Input::Command(Command::GroupInfo(dev)))
    );
}

#[test]
fn no_in_inside_in_at_any_depth() {
    for text in [
        &b"/in a /in b hi"[..],
        b"/in a /IN b /in c hi",
        b"/in a /in",
    ] {
        assert_eq!(
            super::parse(text, 100),
            Err(CommandError::NestedIn),
            "{text:?}"
        );
    }
    assert!(super::parse(b"/in a /index", 100).is_ok());
}
