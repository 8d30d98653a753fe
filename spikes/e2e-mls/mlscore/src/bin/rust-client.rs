//! A client process for the interop driver: one command per stdin line, one answer per
//! stdout line (`ok ...` or `err ...`); every byte string is standard base64.
//! Commands are shared with `js/client.mjs` and `py/client.py`:
//! kp | create GID [DSKEY] | add KP... | remove NAME | commit | confirm | discard | join WELCOME | extjoin GROUPINFO |
//! send TEXT | recv MSG | members | epoch | leaf NAME | groupinfo |
//! dskey | dsremove GID EPOCH LEAF | peek MSG

use base64::{engine::general_purpose::STANDARD as B64, Engine};
use mlscore::{Client, Error, Event, ExternalSenderKey};
use std::io::{BufRead, Write};

fn b64(s: Option<&str>) -> Result<Vec<u8>, Error> {
    B64.decode(s.ok_or_else(|| Error("missing argument".into()))?).map_err(|e| Error(format!("base64: {e}")))
}

fn run(client: &mut Client, ds: &mut Option<ExternalSenderKey>, line: &str) -> Result<String, Error> {
    let mut words = line.split_whitespace();
    let op = words.next().unwrap_or("");
    Ok(match op {
        "kp" => B64.encode(client.key_package()?),
        "create" => {
            let gid = b64(words.next())?;
            let senders = match words.next() {
                Some(k) => vec![(b64(Some(k))?, "relay".to_string())],
                None => vec![],
            };
            client.create_group(&gid, &senders)?;
            String::new()
        }
        "add" => {
            let kps = words.map(|w| b64(Some(w))).collect::<Result<Vec<_>, _>>()?;
            let (commit, welcome) = client.add_members(&kps)?;
            format!("{} {}", B64.encode(commit), B64.encode(welcome))
        }
        "remove" => B64.encode(client.remove_member(words.next().unwrap_or(""))?),
        "commit" => B64.encode(client.commit_pending()?),
        "confirm" => client.confirm()?.to_string(),
        "discard" => {
            client.discard()?;
            String::new()
        }
        "join" => client.join(&b64(words.next())?)?.to_string(),
        "extjoin" => B64.encode(client.join_external(&b64(words.next())?)?),
        "send" => B64.encode(client.encrypt(&b64(words.next())?)?),
        "recv" => match client.process(&b64(words.next())?)? {
            Event::Application(text) => format!("app {}", B64.encode(text)),
            Event::Commit { epoch, removed } => format!("commit {epoch} {}", if removed { "removed" } else { "member" }),
            Event::Proposal => "proposal".into(),
        },
        "members" => client.members()?.join(","),
        "epoch" => client.epoch()?.to_string(),
        "leaf" => client.leaf_of(words.next().unwrap_or(""))?.to_string(),
        "groupinfo" => B64.encode(client.group_info()?),
        "dskey" => {
            let key = ExternalSenderKey::new()?;
            let public = B64.encode(key.public());
            *ds = Some(key);
            public
        }
        "dsremove" => {
            let key = ds.as_ref().ok_or_else(|| Error("no dskey".into()))?;
            let gid = b64(words.next())?;
            let epoch = words.next().and_then(|w| w.parse().ok()).ok_or_else(|| Error("epoch".into()))?;
            let leaf = words.next().and_then(|w| w.parse().ok()).ok_or_else(|| Error("leaf".into()))?;
            B64.encode(key.propose_remove(&gid, epoch, leaf)?)
        }
        "peek" => {
            let (epoch, commit) = mlscore::peek(&b64(words.next())?)?;
            format!("{epoch} {}", if commit { "commit" } else { "other" })
        }
        other => return Err(Error(format!("unknown command {other:?}"))),
    })
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let name = std::env::args().nth(1).unwrap_or_else(|| "rust".into());
    let mut client = Client::new(&name)?;
    let mut ds = None;
    let stdout = std::io::stdout();
    for line in std::io::stdin().lock().lines() {
        let line = line?;
        let answer = match run(&mut client, &mut ds, &line) {
            Ok(out) => format!("ok {out}"),
            Err(e) => format!("err {}", e.0.replace('\n', " ")),
        };
        let mut out = stdout.lock();
        writeln!(out, "{}", answer.trim_end())?;
        out.flush()?;
    }
    Ok(())
}
