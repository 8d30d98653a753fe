//! Relay memory per stored KeyPackage: keeps N real KeyPackages (as the relay would: the
//! bytes, keyed by device, in a queue per device) and reports the resident-set growth.
//! Usage: kpstore [N] [PER_DEVICE]
use mlscore::Client;
use std::collections::{HashMap, VecDeque};

fn rss_bytes() -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    statm.split_whitespace().nth(1).and_then(|p| p.parse::<usize>().ok()).unwrap_or(0) * 4096
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let n: usize = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(20_000);
    let per_device: usize = std::env::args().nth(2).and_then(|a| a.parse().ok()).unwrap_or(10);
    let mut made = Vec::with_capacity(n / per_device + 1);
    let mut total = 0;
    for d in 0..n.div_ceil(per_device) {
        let mut device = Client::new(&format!("user{d}"))?;
        let kps: Vec<Vec<u8>> = (0..per_device).map(|_| device.key_package()).collect::<Result<_, _>>()?;
        total += kps.iter().map(Vec::len).sum::<usize>();
        made.push((format!("user{d}/device1"), kps));
    }
    let before = rss_bytes();
    let mut store: HashMap<String, VecDeque<Box<[u8]>>> = HashMap::new();
    for (device, kps) in &made {
        store.insert(device.clone(), kps.iter().map(|k| k.clone().into_boxed_slice()).collect());
    }
    let after = rss_bytes();
    let count: usize = store.values().map(VecDeque::len).sum();
    println!(
        "{count} KeyPackages ({} devices x {per_device}): mean {} B on the wire; RSS +{} KiB = {} B per stored KeyPackage",
        store.len(),
        total / n.max(1),
        (after - before) / 1024,
        (after - before) / count.max(1)
    );
    Ok(())
}
