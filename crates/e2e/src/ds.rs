//! What the relay, as MLS's Delivery Service, may read of a group message:
//! the clear header of a TLS-serialized `MLSMessage` (its kind, group and
//! epoch), the KeyPackages a Welcome is for, and whether an uploaded
//! KeyPackage is sound and whose it is. Nothing here holds or needs a
//! group secret: the relay orders and routes, and never opens.
//!
//! Every input is untrusted bytes from a peer: each function returns a
//! [`DsError`] for anything that does not parse or check, never panics.

use openmls::prelude::tls_codec::Deserialize as _;
use openmls::prelude::{
    BasicCredential, ContentType, MlsMessageBodyIn, MlsMessageIn, ProtocolMessage, ProtocolVersion,
};
use openmls_rust_crypto::OpenMlsRustCrypto;
use openmls_traits::OpenMlsProvider as _;

use crate::CIPHERSUITE;

/// What a group message is, as the Delivery Service sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Peeked {
    /// A Commit (always a `PublicMessage` here) for `epoch`.
    Commit {
        /// The group it is for.
        group: Vec<u8>,
        /// The epoch it commits from.
        epoch: u64,
    },
    /// A Proposal for `epoch`.
    Proposal {
        /// The group it is for.
        group: Vec<u8>,
        /// Its epoch.
        epoch: u64,
    },
    /// An application message (`PrivateMessage`) sent in `epoch`.
    Application {
        /// The group it is for.
        group: Vec<u8>,
        /// Its epoch.
        epoch: u64,
    },
    /// A Welcome, for the KeyPackages with these references.
    Welcome {
        /// The `KeyPackageRef` of each new member it is for.
        for_key_packages: Vec<Vec<u8>>,
    },
    /// A GroupInfo (unverified: only its header is read).
    GroupInfo {
        /// The group it describes.
        group: Vec<u8>,
        /// Its epoch.
        epoch: u64,
    },
    /// A KeyPackage (check it with [`check_key_package`]).
    KeyPackage,
}

/// Why the Delivery Service refused a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DsError {
    /// Not a TLS-serialized `MLSMessage` (or trailing bytes).
    Malformed,
    /// A handshake message that is not a `PublicMessage`, or a
    /// `PrivateMessage` that is not an application message: the relay
    /// orders handshakes, so it must be able to read their kind.
    UnreadableHandshake,
    /// A wire format the relay does not take.
    Unsupported,
    /// A KeyPackage whose signature, lifetime or keys do not check.
    BadKeyPackage,
    /// A KeyPackage of another ciphersuite than [`CIPHERSUITE`].
    WrongCiphersuite,
    /// A KeyPackage whose credential is not a basic one naming the
    /// uploader.
    NotYours,
    /// A GroupInfo whose signature or tree does not check, or that does
    /// not describe the group as it stands.
    BadGroupInfo,
    /// A commit or proposal that does not apply to the group as it stands
    /// (not signed by one of its leaves, another epoch, a forged tree …).
    BadHandshake,
    /// A commit that leaves a leaf of a member whose removal is due.
    RemovalMissing(String),
}

impl std::fmt::Display for DsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if let DsError::RemovalMissing(name) = self {
            return write!(f, "{name} is to be removed: commit that first");
        }
        f.write_str(match self {
            DsError::Malformed => "not an MLS message",
            DsError::UnreadableHandshake => {
                "handshake messages go as PublicMessage, application messages as PrivateMessage"
            }
            DsError::Unsupported => "an MLS wire format the relay does not take",
            DsError::BadKeyPackage => "the KeyPackage does not verify",
            DsError::WrongCiphersuite => {
                "the KeyPackage is not for MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519"
            }
            DsError::NotYours => "the KeyPackage's credential does not name you",
            DsError::BadGroupInfo => {
                "the GroupInfo is not signed by a member, or is not the group as it stands"
            }
            DsError::BadHandshake => {
                "that commit or proposal does not apply to the group as it stands"
            }
            DsError::RemovalMissing(_) => "a removal is due",
        })
    }
}

impl std::error::Error for DsError {}

/// Reads what the relay needs of one `MLSMessage`.
pub fn peek(bytes: &[u8]) -> Result<Peeked, DsError> {
    let message = MlsMessageIn::tls_deserialize_exact(bytes).map_err(|_| DsError::Malformed)?;
    match message.extract() {
        MlsMessageBodyIn::PublicMessage(public) => {
            let protocol = ProtocolMessage::from(public);
            let (group, epoch) = (
                protocol.group_id().as_slice().to_vec(),
                protocol.epoch().as_u64(),
            );
            match protocol.content_type() {
                ContentType::Commit => Ok(Peeked::Commit { group, epoch }),
                ContentType::Proposal => Ok(Peeked::Proposal { group, epoch }),
                ContentType::Application => Err(DsError::UnreadableHandshake),
            }
        }
        MlsMessageBodyIn::PrivateMessage(private) => {
            let protocol = ProtocolMessage::from(private);
            if protocol.content_type() != ContentType::Application {
                return Err(DsError::UnreadableHandshake);
            }
            Ok(Peeked::Application {
                group: protocol.group_id().as_slice().to_vec(),
                epoch: protocol.epoch().as_u64(),
            })
        }
        MlsMessageBodyIn::Welcome(welcome) => Ok(Peeked::Welcome {
            for_key_packages: welcome
                .secrets()
                .iter()
                .map(|secret| secret.new_member().as_slice().to_vec())
                .collect(),
        }),
        MlsMessageBodyIn::GroupInfo(info) => Ok(Peeked::GroupInfo {
            group: info.group_id().as_slice().to_vec(),
            epoch: info.epoch().as_u64(),
        }),
        MlsMessageBodyIn::KeyPackage(_) => Ok(Peeked::KeyPackage),
        #[allow(unreachable_patterns)]
        _ => Err(DsError::Unsupported),
    }
}

/// A KeyPackage the relay checked: whose it is and its reference, which
/// a Welcome names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckedKeyPackage {
    /// Its `KeyPackageRef`.
    pub reference: Vec<u8>,
    /// The device's signature key (its leaf's).
    pub signature_key: Vec<u8>,
}

/// Checks an uploaded KeyPackage (an `MLSMessage` holding one): it parses,
/// its signature, lifetime and keys check, it is for [`CIPHERSUITE`], and
/// its credential is a basic one whose identity is `member`.
pub fn check_key_package(bytes: &[u8], member: &str) -> Result<CheckedKeyPackage, DsError> {
    let message = MlsMessageIn::tls_deserialize_exact(bytes).map_err(|_| DsError::Malformed)?;
    let MlsMessageBodyIn::KeyPackage(package) = message.extract() else {
        return Err(DsError::Unsupported);
    };
    let provider = OpenMlsRustCrypto::default();
    let package = package
        .validate(provider.crypto(), ProtocolVersion::Mls10)
        .map_err(|_| DsError::BadKeyPackage)?;
    if package.ciphersuite() != CIPHERSUITE {
        return Err(DsError::WrongCiphersuite);
    }
    let leaf = package.leaf_node();
    let credential =
        BasicCredential::try_from(leaf.credential().clone()).map_err(|_| DsError::NotYours)?;
    if credential.identity() != member.as_bytes() {
        return Err(DsError::NotYours);
    }
    let reference = package
        .hash_ref(provider.crypto())
        .map_err(|_| DsError::BadKeyPackage)?;
    Ok(CheckedKeyPackage {
        reference: reference.as_slice().to_vec(),
        signature_key: leaf.signature_key().as_slice().to_vec(),
    })
}
