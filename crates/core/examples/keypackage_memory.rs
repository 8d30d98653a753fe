//! The relay's memory per stored KeyPackage: real KeyPackages (openmls,
//! suite 1) uploaded into the Delivery Service for `DEVICES` devices, the
//! heap counted by a counting allocator before and after.
//!
//! `cargo run --release -p eaxchat-core --example keypackage_memory [DEVICES] [PER_DEVICE]`

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};

use eaxchat_core::delivery::DeliveryService;
use eaxchat_proto::name::Name;
use openmls::prelude::*;
use openmls_basic_credential::SignatureKeyPair;
use openmls_rust_crypto::OpenMlsRustCrypto;

struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

// SAFETY: every call is passed to `System` unchanged; only a counter is kept.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: the caller's layout, passed on.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: the caller's pointer and layout, passed on.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static COUNTING: Counting = Counting;

fn main() {
    let mut args = std::env::args().skip(1);
    let devices: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(2000);
    let per_device: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(1);
    let suite = Ciphersuite::MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519;
    let name = Name::new("alice").expect("a name");
    let provider = OpenMlsRustCrypto::default();
    let signer = SignatureKeyPair::new(suite.signature_algorithm()).expect("a key");
    let credential = CredentialWithKey {
        credential: BasicCredential::new(b"alice".to_vec()).into(),
        signature_key: signer.to_public_vec().into(),
    };
    let mut packages = Vec::new();
    for _ in 0..devices * per_device {
        let bundle = KeyPackage::builder()
            .build(suite, &provider, &signer, credential.clone())
            .expect("a KeyPackage");
        packages.push(
            MlsMessageOut::from(bundle.key_package().clone())
                .to_bytes()
                .expect("bytes"),
        );
    }
    let wire: usize = packages.iter().map(Vec::len).sum();
    let mut delivery = DeliveryService::default();
    let before = LIVE.load(Ordering::Relaxed);
    for (i, package) in packages.iter().enumerate() {
        let mut device = [0u8; 32];
        device[..8].copy_from_slice(&((i / per_device) as u64).to_le_bytes());
        delivery.upload(device, &name, package).expect("kept");
    }
    let after = LIVE.load(Ordering::Relaxed);
    let stored = devices * per_device;
    println!(
        "{stored} KeyPackages ({devices} devices x {per_device}): {} B of relay heap each; \
         {} B on the wire each; state file {} B each",
        (after - before) / stored as isize,
        wire / stored,
        delivery.encode().len() / stored,
    );
}
