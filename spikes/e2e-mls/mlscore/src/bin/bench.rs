//! Figures for the issue: a member's time to process a Commit in an N-member group
//! (default 100), the sizes of KeyPackage / Commit / Welcome / GroupInfo, and the time to
//! create a commit. Usage: bench [N] [ROUNDS]

use mlscore::{Client, Event};
use std::time::{Duration, Instant};

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let n: usize = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(100);
    let rounds: usize = std::env::args().nth(2).and_then(|a| a.parse().ok()).unwrap_or(20);
    let mut creator = Client::new("member-0")?;
    creator.create_group(b"bench", &[])?;
    let mut receiver = Client::new("member-1")?;
    let mut kps = vec![receiver.key_package()?];
    let t = Instant::now();
    for i in 2..n {
        kps.push(Client::new(&format!("member-{i}"))?.key_package()?);
    }
    let kp_time = t.elapsed() / (n as u32 - 1);
    println!("KeyPackage: {} bytes (TLS MLSMessage), {:?} each to make", kps[0].len(), kp_time);
    let t = Instant::now();
    let (commit, welcome) = creator.add_members(&kps)?;
    let add_time = t.elapsed();
    creator.confirm()?;
    println!("add {} members in one commit: {:?}; commit {} B, welcome {} B", n - 1, add_time, commit.len(), welcome.len());
    let t = Instant::now();
    receiver.join(&welcome)?;
    println!("join from that Welcome ({n}-member tree in it): {:?}", t.elapsed());
    println!("GroupInfo with ratchet tree, {n} members: {} B", creator.group_info()?.len());

    let (mut create, mut process) = (Vec::new(), Vec::new());
    let mut size = 0;
    for _ in 0..rounds {
        let t = Instant::now();
        let commit = creator.commit_pending()?; // empty commit: a full update path
        create.push(t.elapsed());
        creator.confirm()?;
        size = commit.len();
        let t = Instant::now();
        let event = receiver.process(&commit)?;
        process.push(t.elapsed());
        assert!(matches!(event, Event::Commit { removed: false, .. }));
    }
    println!(
        "update commit in a {n}-member group: {size} B; create median {:?}, process+merge median {:?} (min {:?}, max {:?}) over {rounds}",
        median(create),
        median(process.clone()),
        process.iter().min().copied().unwrap_or_default(),
        process.iter().max().copied().unwrap_or_default()
    );
    let t = Instant::now();
    let commit = creator.remove_member(&format!("member-{}", n - 1))?;
    let remove_create = t.elapsed();
    creator.confirm()?;
    let t = Instant::now();
    receiver.process(&commit)?;
    println!("remove commit: {} B; create {:?}, process+merge {:?}", commit.len(), remove_create, t.elapsed());
    let msg = creator.encrypt(b"hello")?;
    let t = Instant::now();
    receiver.process(&msg)?;
    println!("application message of 5 bytes: {} B on the wire; decrypt {:?}", msg.len(), t.elapsed());
    Ok(())
}
