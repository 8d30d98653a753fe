//! One device of a member: its Ed25519 signature key pair and basic
//! credential (identity = the member's name), its openmls provider, and
//! the files that keep both across restarts.
//!
//! The key pair is made once, on the first [`Device::open`] of an empty
//! state directory, and never leaves the device except as the public key
//! in its KeyPackages and leaves. Every change to openmls's storage (a new
//! KeyPackage, a group's new epoch) is written back with [`Device::save`]
//! before the operation returns, so the bytes a caller sends out always
//! match what a restarted device reloads.

use std::path::Path;

use openmls::prelude::tls_codec::{Deserialize as _, Serialize as _};
use openmls::prelude::{
    BasicCredential, Capabilities, CredentialWithKey, ExtensionType, KeyPackage, MlsMessageOut,
};
use openmls_basic_credential::SignatureKeyPair;
use openmls_rust_crypto::OpenMlsRustCrypto;
use openmls_traits::OpenMlsProvider as _;

use crate::error::mls;
use crate::state::{self, Reader, StateDir};
use crate::{CIPHERSUITE, E2eError};

/// The file holding the device's name and signature key pair.
const DEVICE_FILE: &str = "device";
/// The file holding openmls's storage and the device's rooms.
const MLS_FILE: &str = "mls";
const DEVICE_MAGIC: &[u8; 8] = b"EAXDEV01";

/// One device: a member's name, its signature key pair, and its MLS
/// storage, kept in a state directory. One process opens a directory at a
/// time (a second `Device` or [`crate::E2eRooms`] on it would overwrite
/// the first's writes); with groups, use it through `E2eRooms`.
pub struct Device {
    pub(crate) state: StateDir,
    pub(crate) name: String,
    pub(crate) signer: SignatureKeyPair,
    pub(crate) credential: CredentialWithKey,
    pub(crate) provider: OpenMlsRustCrypto,
    /// The rooms record [`crate::E2eRooms`] keeps beside the storage.
    pub(crate) rooms_record: Vec<u8>,
}

impl std::fmt::Debug for Device {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Device")
            .field("name", &self.name)
            .field("signature_key", &crate::hex(self.signer.public()))
            .finish_non_exhaustive()
    }
}

impl Device {
    /// Opens the device of member `name` kept in `dir`, or makes one (a
    /// fresh Ed25519 key pair) if `dir` holds none. A directory holding
    /// another member's device is refused.
    pub fn open(dir: &Path, name: &str) -> Result<Self, E2eError> {
        let state = StateDir::open(dir)?;
        let signer = match state.read(DEVICE_FILE)? {
            Some(bytes) => read_device_file(&bytes, name)?,
            None => {
                let signer = SignatureKeyPair::new(CIPHERSUITE.signature_algorithm())
                    .map_err(mls("signature key"))?;
                state.write(DEVICE_FILE, &device_file(&signer, name)?)?;
                signer
            }
        };
        let provider = OpenMlsRustCrypto::default();
        let mut rooms_record = Vec::new();
        if let Some(bytes) = state.read(MLS_FILE)? {
            let (rooms, entries) = state::decode_mls(&bytes)?;
            rooms_record = rooms;
            let mut values = provider
                .storage()
                .values
                .write()
                .map_err(|_| E2eError::CorruptState("storage lock"))?;
            values.extend(entries);
        }
        let credential = CredentialWithKey {
            credential: BasicCredential::new(name.as_bytes().to_vec()).into(),
            signature_key: signer.to_public_vec().into(),
        };
        Ok(Self {
            state,
            name: name.to_string(),
            signer,
            credential,
            provider,
            rooms_record,
        })
    }

    /// The member's name (the credential's identity).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The device's public signature key (Ed25519, 32 bytes): what peers
    /// pin and what safety numbers cover.
    pub fn signature_key(&self) -> &[u8] {
        self.signer.public()
    }

    /// `n` fresh KeyPackages, each as MLSMessage bytes for `/keypackage`.
    /// Their private keys are saved before this returns. The last of the
    /// batch is a last-resort one (RFC 9420 §16.8): the relay hands a
    /// device's last KeyPackage out again rather than leave none, so its
    /// keys stay after a Welcome uses them; the others are single-use.
    pub fn key_packages(&mut self, n: usize) -> Result<Vec<Vec<u8>>, E2eError> {
        let mut out = Vec::with_capacity(n);
        for i in 0..n {
            // RFC 9420 §13.4: a leaf lists the extensions its KeyPackage
            // carries, so every leaf says it knows `last_resort`.
            let builder = KeyPackage::builder().leaf_node_capabilities(Capabilities::new(
                None,
                None,
                Some(&[ExtensionType::LastResort]),
                None,
                None,
            ));
            let builder = if i + 1 == n {
                builder.mark_as_last_resort()
            } else {
                builder
            };
            let bundle = builder
                .build(
                    CIPHERSUITE,
                    &self.provider,
                    &self.signer,
                    self.credential.clone(),
                )
                .map_err(mls("key package"))?;
            out.push(
                MlsMessageOut::from(bundle.key_package().clone())
                    .to_bytes()
                    .map_err(mls("encode key package"))?,
            );
        }
        self.save()?;
        Ok(out)
    }

    /// Writes openmls's storage and the rooms record to the state
    /// directory (atomically).
    pub(crate) fn save(&self) -> Result<(), E2eError> {
        let values = self
            .provider
            .storage()
            .values
            .read()
            .map_err(|_| E2eError::CorruptState("storage lock"))?;
        let bytes = state::encode_mls(&self.rooms_record, values.iter());
        drop(values);
        self.state.write(MLS_FILE, &bytes)
    }
}

fn device_file(signer: &SignatureKeyPair, name: &str) -> Result<Vec<u8>, E2eError> {
    let mut out = DEVICE_MAGIC.to_vec();
    state::put_bytes(&mut out, name.as_bytes());
    let key = signer
        .tls_serialize_detached()
        .map_err(mls("encode signature key"))?;
    out.extend_from_slice(&key);
    Ok(out)
}

fn read_device_file(bytes: &[u8], name: &str) -> Result<SignatureKeyPair, E2eError> {
    let corrupt = || E2eError::CorruptState("device");
    let mut reader = Reader(bytes);
    if reader.take(DEVICE_MAGIC.len()).ok_or_else(corrupt)? != DEVICE_MAGIC {
        return Err(corrupt());
    }
    let owner = reader.bytes().ok_or_else(corrupt)?;
    if owner != name.as_bytes() {
        return Err(E2eError::OtherMember(
            String::from_utf8_lossy(owner).into_owned(),
        ));
    }
    let signer = SignatureKeyPair::tls_deserialize_exact(reader.0).map_err(|_| corrupt())?;
    if signer.signature_scheme() != CIPHERSUITE.signature_algorithm() {
        return Err(corrupt());
    }
    Ok(signer)
}
