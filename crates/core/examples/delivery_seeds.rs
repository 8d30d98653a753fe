//! Writes the `delivery` fuzz target's seeds: a real end-to-end room's life
//! (alice makes room `r0`, adds bob, both talk, bob is removed) as the
//! target's operations, `[op][a][b][len: u16 LE][bytes]`, into
//! `fuzz/corpus/delivery/` — one seed of the whole life, and one of each
//! step on its own.
//!
//! `cargo run -p eaxchat-core --example delivery_seeds [DIR]`

use std::path::PathBuf;

use eaxchat_e2e::E2eRooms;

/// One operation of the fuzz target.
fn op(out: &mut Vec<u8>, op: u8, a: u8, b: u8, bytes: &[u8]) {
    let len = u16::try_from(bytes.len()).expect("a message under 64 KiB");
    out.extend_from_slice(&[op, a, b]);
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(bytes);
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::args()
        .nth(1)
        .map_or_else(|| PathBuf::from("fuzz/corpus/delivery"), PathBuf::from);
    std::fs::create_dir_all(&dir)?;
    let scratch = std::env::temp_dir().join(format!("delivery-seeds-{}", std::process::id()));
    let mut alice = E2eRooms::open(&scratch.join("alice"), "alice")?;
    let mut bob = E2eRooms::open(&scratch.join("bob"), "bob")?;
    let (make, take, upload, packages, welcomes, removal) = (0, 1, 2, 3, 4, 5);
    let (room, alice_device, bob_device, bob_name) = (0, 0, 1, 1);

    let mut steps: Vec<Vec<u8>> = Vec::new();
    let mut step = |f: &mut dyn FnMut(&mut Vec<u8>)| {
        let mut one = Vec::new();
        f(&mut one);
        steps.push(one);
    };
    step(&mut |o| op(o, make, room, 0, b""));
    let package = bob.key_packages(1)?.remove(0);
    step(&mut |o| op(o, upload, bob_device, bob_name, &package));
    let info = alice.create("r0")?;
    step(&mut |o| op(o, take, room, alice_device, &info));
    step(&mut |o| op(o, packages, 0, 0, &[bob_device]));
    let (commit, welcome) = alice.add("r0", std::slice::from_ref(&package))?;
    step(&mut |o| op(o, take, room, alice_device, &commit));
    let info = alice.accepted("r0")?;
    step(&mut |o| op(o, take, room, alice_device, &welcome));
    step(&mut |o| op(o, take, room, alice_device, &info));
    bob.join_welcome(&welcome)?;
    let hello = bob.encrypt("r0", "hello")?;
    step(&mut |o| op(o, take, room, bob_device, &hello));
    let back = alice.encrypt("r0", "hi bob")?;
    step(&mut |o| op(o, take, room, alice_device, &back));
    step(&mut |o| op(o, removal, room, bob_name, b""));
    let remove = alice.remove("r0", "bob")?;
    step(&mut |o| op(o, take, room, alice_device, &remove));
    step(&mut |o| op(o, welcomes, bob_device, 0, b""));

    std::fs::write(dir.join("seed-life"), steps.concat())?;
    for (i, one) in steps.iter().enumerate() {
        std::fs::write(dir.join(format!("seed-step-{i:02}")), one)?;
    }
    std::fs::remove_dir_all(&scratch)?;
    println!("{} seeds in {}", steps.len() + 1, dir.display());
    Ok(())
}
