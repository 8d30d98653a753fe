//! A member's cost of a Commit in a 100-member end-to-end room, through
//! the same `E2eRooms` calls the clients make (so each figure includes
//! writing the device's state file, fsync and all):
//!
//! - `process_commit/100`: a member processes and merges another's
//!   commit (an empty commit: a full update path, the common case of a
//!   commit that adds or removes one device);
//! - `create_commit/100`: a member makes one (before the relay's answer).
//!
//! Run: `nice cargo bench -p eaxchat-e2e --bench commit`.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use eaxchat_e2e::{E2eRooms, Event};

const MEMBERS: usize = 100;
const ROOM: &str = "bench";

/// The creator and one other member of a `MEMBERS`-member group.
fn group(dir: &std::path::Path) -> (E2eRooms, E2eRooms) {
    let mut creator = E2eRooms::open(&dir.join("member-0"), "member-0").expect("device");
    let mut receiver = E2eRooms::open(&dir.join("member-1"), "member-1").expect("device");
    creator.create(ROOM).expect("create");
    let mut packages = receiver.key_packages(1).expect("kp");
    for i in 2..MEMBERS {
        let name = format!("member-{i}");
        let mut device = E2eRooms::open(&dir.join(&name), &name).expect("device");
        packages.extend(device.key_packages(1).expect("kp"));
    }
    let (_, welcome) = creator.add(ROOM, &packages).expect("add");
    creator.accepted(ROOM).expect("merge");
    receiver.join_welcome(&welcome).expect("join");
    assert_eq!(receiver.members(ROOM).expect("members").len(), MEMBERS);
    (creator, receiver)
}

fn commits(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut creator, mut receiver) = group(dir.path());
    let mut bench = c.benchmark_group("commit");
    bench
        .sample_size(30)
        .measurement_time(Duration::from_secs(8));

    bench.bench_function("process_commit/100", |b| {
        b.iter_custom(|iters| {
            let mut spent = Duration::ZERO;
            for _ in 0..iters {
                let commit = creator.commit_proposals(ROOM).expect("commit");
                creator.accepted(ROOM).expect("merge");
                let start = Instant::now();
                let event = receiver.process(ROOM, black_box(&commit)).expect("process");
                spent += start.elapsed();
                assert!(matches!(
                    event,
                    Event::Commit {
                        removed_me: false,
                        ..
                    }
                ));
            }
            spent
        })
    });

    bench.bench_function("create_commit/100", |b| {
        b.iter_custom(|iters| {
            let mut spent = Duration::ZERO;
            for _ in 0..iters {
                let start = Instant::now();
                let commit = creator.commit_proposals(ROOM).expect("commit");
                spent += start.elapsed();
                creator.accepted(ROOM).expect("merge");
                receiver.process(ROOM, &commit).expect("process");
            }
            spent
        })
    });
    bench.finish();
}

criterion_group!(benches, commits);
criterion_main!(benches);
