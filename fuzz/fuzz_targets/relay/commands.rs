//! The `relay` fuzz target's commands: the `/` lines a script sends
//! (`Action::Command`), and what the model says each does, to the
//! sender's rooms and to who is told what. The command line is read with
//! the protocol crate's parser, as the relay reads it (the grammar is the
//! `commands` target's); what a parsed command does to rooms is the
//! model's own, from the rooms spec: `/hello eaxchat/1`, `/join`, `/part`,
//! `/in`, `/topic`, `/history`, `/me`, `/nick`, a `//` escaped text and an
//! unknown command. Run with no presence and no history, so every reply
//! is the command's own.

use eaxchat_core::relay::{MAX_COMMAND_TEXT, MAX_ROOMS_PER_CONN};
use eaxchat_proto::commands::{self, Command, Input, RoomName};
use eaxchat_proto::events::Event;

use super::rooms::{TopicModel, room_name, spell};
use super::*;

/// The command lines `which` and `arg` pick for client `serial`; several
/// for a run of joins (`/join #r1`, `/join #r2` …, in one read).
fn command_lines(serial: u32, which: u8, arg: u8) -> Vec<String> {
    let form = which / 12;
    let room = spell(&room_name(arg), form);
    let one = match which % 12 {
        0 => format!("/bogus{}", arg % 10),
        1 => format!("/me acts {arg}"),
        2 => format!("//lit {arg}"),
        3 => format!("/nick n{serial}x{}", arg % 2),
        4 => format!("/join {room}"),
        5 if form.is_multiple_of(2) => "/part".to_owned(),
        5 => format!("/part {room}"),
        6 => {
            let rest = match form % 9 {
                0 => String::new(),
                1 => format!("in {arg}"),
                2 => format!("//esc {arg}"),
                3 => format!("/me acts {arg}"),
                4 => format!("/topic t{arg}"),
                5 => format!("/history {} {}", arg / 2, arg % 128),
                6 => format!("/in {} nested", spell(&room_name(arg / 40), form)),
                7 => "/bogus".to_owned(),
                _ => format!("/join {}", spell(&room_name(arg / 3), form)),
            };
            format!("/in {room} {rest}")
        }
        7 if form.is_multiple_of(3) => "/topic".to_owned(),
        7 if form % 3 == 1 => format!("/topic t{arg}"),
        7 => format!("/history {arg} {}", arg % 128),
        8 => "/hello eaxchat/1".to_owned(),
        9 => format!("/in {room}"),
        10 => {
            // Enough joins to reach the cap on rooms per connection.
            let count = 1 + usize::from(arg) % (MAX_ROOMS_PER_CONN + 4);
            return (0..count)
                .map(|k| format!("/join {}", spell(&room_name(k as u8 + 1), form)))
                .collect();
        }
        _ => format!("/join {room}\n/in {room} in {arg}"),
    };
    one.split('\n').map(str::to_owned).collect()
}

impl Harness {
    /// Client `i` sends the command lines `which` and `arg` pick (see
    /// [`Action::Command`]), all in one read; what each owes whom
    /// follows. Only a newline client in good standing sends them.
    pub(crate) fn command(&mut self, i: usize, which: u8, arg: u8) {
        let sender = &self.clients[i];
        if !sender.newline || sender.hostile || sender.fate != Fate::Open || sender.seed {
            return;
        }
        let mut lines = command_lines(sender.serial, which, arg);
        if !sender.sent_newline {
            // Its first frame is taken before its `\n` is seen, and what
            // the relay tells it until the end of the read is paced as a
            // seed receiver's: it may be dropped as slow in the middle of
            // the read, at a line the model does not work out. One line.
            lines.truncate(1);
        }
        let mut wire = BytesMut::new();
        for line in &lines {
            let start = wire.len();
            self.cipher.seal_into(line.as_bytes(), &mut wire);
            if wire.len() - start - 1 > self.limits.max_frame {
                return;
            }
        }
        let id = sender.id;
        self.relay.receive(id, &wire);
        let sender = &mut self.clients[i];
        sender.authenticated = true;
        sender.sent_newline = true;
        sender.took_frame = false;
        for line in &lines {
            self.take_line(i, line.as_bytes());
        }
        self.weigh_pre_auth();
    }

    /// One plaintext of client `i`'s, as the relay takes a frame's: text
    /// (a `//` escaped one), or a command.
    fn take_line(&mut self, i: usize, plaintext: &[u8]) {
        if plaintext.starts_with(b"//") {
            self.say(i, &plaintext[1..]);
            return;
        }
        match commands::parse(plaintext, MAX_COMMAND_TEXT) {
            Ok(Input::Command(command)) => self.run_command(i, command),
            Ok(Input::Text(_)) => unreachable!("a line starting with one / is a command"),
            Err(error) => self.tell(i, &Event::error(&error.to_string())),
        }
    }

    /// What command `command` of client `i`'s does, and who is told.
    fn run_command(&mut self, i: usize, command: Command<'_>) {
        match command {
            Command::Join(name) => self.join(i, &name),
            Command::Part(name) => self.part(i, name.as_ref()),
            Command::In { room, rest } => self.in_room(i, &room, rest),
            Command::Topic(text) => self.topic(i, text),
            Command::History { .. } => {
                let Some(room) = self.current_or_refuse(i) else {
                    return;
                };
                // No history is kept: every page is empty, and starts at
                // the oldest the relay has.
                let page = Event::HistoryStart {
                    room: &room,
                    count: 0,
                    page: true,
                    first: true,
                };
                self.tell(i, &page);
            }
            Command::Me(text) => {
                let Some(room) = self.clients[i].current.clone() else {
                    self.tell(i, &Event::error("error: you are in no room; /join one"));
                    return;
                };
                let state = self
                    .rooms
                    .rooms
                    .get_mut(&room)
                    .expect("a current room exists");
                let id = state.said;
                state.said += 1;
                let (from, ts) = (self.clients[i].nick.clone(), self.wall_millis());
                let event = Event::Message {
                    room: &room,
                    from: from.as_ref(),
                    text,
                    ts,
                    history: false,
                    action: true,
                    stamped: false,
                    id,
                };
                self.tell_room(&room, Some(i), &event);
            }
            Command::Nick(name) => {
                if self.clients[i].nick.as_ref() != Some(&name) {
                    let text = format!("* you are now {name}");
                    self.tell(i, &Event::notice(&text));
                    self.clients[i].nick = Some(name);
                }
            }
            Command::Hello(_) => {
                self.clients[i].events = true;
                let client = &self.clients[i];
                let (name, room) = (client.nick.clone(), client.current.clone());
                let rooms = client.rooms.clone();
                let rooms: Vec<&RoomName> = rooms.iter().collect();
                let welcome = Event::Welcome {
                    name: name.as_ref(),
                    room: room.as_ref(),
                    rooms: &rooms,
                    members: false,
                };
                self.tell(i, &welcome);
            }
            other => unreachable!("the script never sends {other:?}"),
        }
    }

    /// `/join NAME`: an `eaxchat/1` client adds the room (at most
    /// [`MAX_ROOMS_PER_CONN`]), a plain one moves to it.
    fn join(&mut self, i: usize, name: &RoomName) {
        let multi = self.clients[i].events;
        if self.clients[i].rooms.contains(name) {
            self.enter(i, name);
            let text = format!("* you are already in {name}; sending there");
            self.tell(
                i,
                &Event::Notice {
                    room: Some(name),
                    text: &text,
                },
            );
            if multi {
                // Its current room changed.
                self.tell_my_rooms(i);
            }
            return;
        }
        if multi && self.clients[i].rooms.len() >= MAX_ROOMS_PER_CONN {
            let text = format!(
                "error: you are in {MAX_ROOMS_PER_CONN} rooms, the most there can be; /part one first"
            );
            self.tell(
                i,
                &Event::Error {
                    room: Some(name),
                    text: &text,
                },
            );
            return;
        }
        if !self.find_or_make(name) {
            let text = format!(
                "error: the relay has its most rooms ({}); join one that exists (/rooms)",
                self.rooms.max_rooms
            );
            self.tell(i, &Event::error(&text));
            return;
        }
        if !multi {
            for room in self.clients[i].rooms.clone().iter().rev() {
                self.leave(i, room);
            }
        }
        self.enter(i, name);
        let text = format!("* you joined {name} ({} here)", self.room_len(name));
        self.tell(
            i,
            &Event::Notice {
                room: Some(name),
                text: &text,
            },
        );
        if let Some(topic) = self
            .rooms
            .rooms
            .get(name)
            .and_then(|room| room.topic.clone())
        {
            self.tell(i, &topic_event(name, &topic));
        }
        if multi {
            self.tell_my_rooms(i);
        }
    }

    /// `/part [NAME]`: leaves the room named, or the current one.
    fn part(&mut self, i: usize, name: Option<&RoomName>) {
        let client = &self.clients[i];
        let room = match name {
            Some(name) => client.rooms.contains(name).then(|| name.clone()),
            None => client.current.clone(),
        };
        let Some(room) = room else {
            let text = match name {
                Some(name) => format!("error: you are not in {name}"),
                None => "error: you are in no room".to_owned(),
            };
            self.tell(
                i,
                &Event::Error {
                    room: name,
                    text: &text,
                },
            );
            return;
        };
        self.leave(i, &room);
        let text = format!("* you left {room}");
        self.tell(
            i,
            &Event::Notice {
                room: Some(&room),
                text: &text,
            },
        );
        if self.clients[i].events {
            self.tell_my_rooms(i);
        }
    }

    /// `/in NAME REST`: NAME (one of the client's rooms) becomes current,
    /// then REST is taken there as a plaintext of its own.
    fn in_room(&mut self, i: usize, name: &RoomName, rest: &[u8]) {
        if !self.clients[i].rooms.contains(name) {
            let text = format!("error: you are not in {name}; /join {name}");
            self.tell(
                i,
                &Event::Error {
                    room: Some(name),
                    text: &text,
                },
            );
            return;
        }
        self.clients[i].current = Some(name.clone());
        if rest.is_empty() {
            return;
        }
        match commands::parse(rest, MAX_COMMAND_TEXT) {
            Ok(Input::Command(command)) => self.run_command(i, command),
            Ok(Input::Text(text)) => {
                self.say(i, text);
            }
            Err(error) => {
                let text = error.to_string();
                self.tell(
                    i,
                    &Event::Error {
                        room: Some(name),
                        text: &text,
                    },
                );
            }
        }
    }

    /// `/topic [TEXT]`: shows the current room's topic, or sets it (told
    /// to the whole room, the setter too).
    fn topic(&mut self, i: usize, text: Option<&[u8]>) {
        let Some(room) = self.current_or_refuse(i) else {
            return;
        };
        let Some(text) = text else {
            let topic = self
                .rooms
                .rooms
                .get(&room)
                .and_then(|room| room.topic.clone());
            let topic = topic.unwrap_or(TopicModel {
                from: None,
                text: Vec::new(),
                ts: 0,
            });
            self.tell(i, &topic_event(&room, &topic));
            return;
        };
        let topic = TopicModel {
            from: self.clients[i].nick.clone(),
            text: text.to_vec(),
            ts: self.wall_millis(),
        };
        self.rooms
            .rooms
            .get_mut(&room)
            .expect("a current room exists")
            .topic = Some(topic.clone());
        self.tell_room(&room, None, &topic_event(&room, &topic));
    }

    /// Client `i`'s current room; if it has none it is told so.
    fn current_or_refuse(&mut self, i: usize) -> Option<RoomName> {
        let room = self.clients[i].current.clone();
        if room.is_none() {
            self.tell(i, &Event::error("error: you are in no room; /join one"));
        }
        room
    }
}

/// The `topic` event for room `room`'s `topic`.
fn topic_event<'a>(room: &'a RoomName, topic: &'a TopicModel) -> Event<'a> {
    Event::Topic {
        room,
        from: topic.from.as_ref(),
        text: &topic.text,
        ts: topic.ts,
    }
}
