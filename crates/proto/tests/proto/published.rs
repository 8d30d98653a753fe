//! The published AES-EAX vectors in `tests/vectors/` (Wycheproof, both
//! editions, and the EAX paper's appendix), read into one case type for
//! every test that checks an EAX implementation against them.

use serde_json::Value;

/// One known-answer EAX case.
pub struct Case {
    /// Which file and case, for failure messages.
    pub id: String,
    /// The key.
    pub key: Vec<u8>,
    /// The nonce.
    pub nonce: Vec<u8>,
    /// The associated data (the relay's frames have none).
    pub header: Vec<u8>,
    /// The plaintext.
    pub msg: Vec<u8>,
    /// The ciphertext, without the tag.
    pub ct: Vec<u8>,
    /// The tag.
    pub tag: Vec<u8>,
    /// Whether it must open.
    pub valid: bool,
}

/// A JSON file of `tests/vectors/`.
pub fn load(name: &str) -> Value {
    let path = format!("{}/../../tests/vectors/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Bytes from a JSON string of hex digits.
pub fn hex(value: &Value) -> Vec<u8> {
    let text = value.as_str().expect("a hex string");
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).expect("hex digits"))
        .collect()
}

/// Every case of a Wycheproof file. "acceptable" (legacy edition only)
/// marks short nonces: EAX defines them, so they count as valid.
pub fn wycheproof(name: &str) -> Vec<Case> {
    let file = load(name);
    let mut cases = Vec::new();
    for group in file["testGroups"].as_array().expect("testGroups") {
        for test in group["tests"].as_array().expect("tests") {
            cases.push(Case {
                id: format!("{name} tcId {}", test["tcId"]),
                key: hex(&test["key"]),
                nonce: hex(&test["iv"]),
                header: hex(&test["aad"]),
                msg: hex(&test["msg"]),
                ct: hex(&test["ct"]),
                tag: hex(&test["tag"]),
                valid: test["result"].as_str() != Some("invalid"),
            });
        }
    }
    cases
}

/// The ten vectors of the EAX paper's appendix (all with a header).
pub fn eax_paper() -> Vec<Case> {
    let file = load("eax_paper_vectors.json");
    file["vectors"]
        .as_array()
        .expect("vectors")
        .iter()
        .enumerate()
        .map(|(i, v)| Case {
            id: format!("paper #{i}"),
            key: hex(&v["key"]),
            nonce: hex(&v["nonce"]),
            header: hex(&v["header"]),
            msg: hex(&v["msg"]),
            ct: hex(&v["ct"]),
            tag: hex(&v["tag"]),
            valid: true,
        })
        .collect()
}
