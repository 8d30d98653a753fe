//! Prints which backend the `aes` crate picks on this CPU, and the CPU
//! features behind the choice, so `scripts/aes-backends` can check that a
//! test run under `qemu-x86_64 -cpu …` really ran the backend it meant to.
//!
//! The detection is the `aes` crate's own (aes 0.9, `src/lib.rs`): the same
//! `cpufeatures` macros with the same feature lists, tried in its order
//! (VAES512, then VAES256, then AES-NI, else software). `cpufeatures`
//! counts a feature only when the OS has enabled its register state
//! (XCR0): it files `vaes` under the AVX-512 (`zmm`) state, so VAES256 is
//! chosen only where that state is on. The standard library's view is
//! printed beside it for comparison.
//!
//! Last, it checks the backend itself: 1 to 40 blocks encrypted in one
//! call (the backend's parallel path, 30 blocks a call for VAES256) must
//! equal the same blocks one call each, for every key size. qemu 7.2's
//! emulation of 256-bit VAES computes the upper 128-bit lane wrongly, and
//! this line is how `scripts/aes-backends` tells an emulator it cannot
//! trust from a bug of ours (docs/fuzzing.md).

#[cfg(target_arch = "x86_64")]
mod detect {
    cpufeatures::new!(features_aes, "aes");
    cpufeatures::new!(features_vaes256, "vaes");
    cpufeatures::new!(features_vaes512, "avx512f", "vaes");

    /// The backend aes 0.9 picks, by its own rule.
    pub(crate) fn backend() -> &'static str {
        if features_vaes512::get() {
            "vaes512"
        } else if features_vaes256::get() {
            "vaes256"
        } else if features_aes::get() {
            "aesni"
        } else {
            "soft"
        }
    }

    /// What the standard library's runtime detection reports.
    pub(crate) fn std_view() -> String {
        format!(
            "std: aes={} avx2={} vaes={} vpclmulqdq={} avx512f={}",
            std::arch::is_x86_feature_detected!("aes"),
            std::arch::is_x86_feature_detected!("avx2"),
            std::arch::is_x86_feature_detected!("vaes"),
            std::arch::is_x86_feature_detected!("vpclmulqdq"),
            std::arch::is_x86_feature_detected!("avx512f"),
        )
    }
}

/// Whether encrypting 1 to 40 blocks in one call gives the same blocks as
/// one call each, for AES-128, -192 and -256; the first disagreement.
fn parallel_agrees() -> Result<(), String> {
    use aes::cipher::{Array, BlockCipherEncrypt, KeyInit};
    fn check<C: KeyInit + BlockCipherEncrypt<BlockSize = aes::cipher::consts::U16>>(
        key: &[u8],
        name: &str,
    ) -> Result<(), String> {
        let cipher = C::new_from_slice(key).map_err(|e| e.to_string())?;
        for n in 1..=40usize {
            let mut together: Vec<aes::Block> =
                (0..n).map(|i| Array::from([i as u8; 16])).collect();
            let mut each = together.clone();
            cipher.encrypt_blocks(&mut together);
            for block in &mut each {
                cipher.encrypt_block(block);
            }
            if let Some(i) = (0..n).find(|&i| together[i] != each[i]) {
                return Err(format!("{name}: {n} blocks at once differ at block {i}"));
            }
        }
        Ok(())
    }
    let key: Vec<u8> = (0..32).collect();
    check::<aes::Aes128>(&key[..16], "AES-128")?;
    check::<aes::Aes192>(&key[..24], "AES-192")?;
    check::<aes::Aes256>(&key, "AES-256")
}

#[cfg(target_arch = "x86_64")]
fn main() {
    println!("backend: {}", detect::backend());
    println!("{}", detect::std_view());
    match parallel_agrees() {
        Ok(()) => println!("parallel: agrees"),
        Err(e) => println!("parallel: DISAGREES ({e})"),
    }
}

#[cfg(not(target_arch = "x86_64"))]
fn main() {
    println!("backend: not-x86_64");
}
