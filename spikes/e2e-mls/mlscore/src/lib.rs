//! Spike: the few MLS (RFC 9420) operations an eaxchat client needs, over `openmls`.
//!
//! One `Client` is one device: a signature key, a basic credential (the member's name)
//! and at most one group. Every message crosses the boundary as the bytes of a
//! TLS-serialized `MLSMessage`, so the same bytes go to ts-mls and to the Python binding.
//! Handshake messages go out as `PublicMessage` (so the relay, as Delivery Service, can
//! read epoch and sender to order commits); application messages are always `PrivateMessage`.

use openmls::prelude::{tls_codec::*, *};
use openmls_basic_credential::SignatureKeyPair;
use openmls_rust_crypto::OpenMlsRustCrypto;

/// MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519 (id 1): the one suite openmls, ts-mls
/// (WebCrypto only, no extra packages) and Chromium all have.
pub const CIPHERSUITE: Ciphersuite = Ciphersuite::MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519;

/// What went wrong, as text: enough for a spike.
#[derive(Debug)]
pub struct Error(pub String);

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}

fn err<E: std::fmt::Debug>(what: &str) -> impl FnOnce(E) -> Error + '_ {
    move |e| Error(format!("{what}: {e:?}"))
}

/// What processing one incoming message did.
#[derive(Debug, PartialEq, Eq)]
pub enum Event {
    /// An application message, decrypted.
    Application(Vec<u8>),
    /// A commit was applied; the group is now at `epoch`. `removed` when it removed us.
    Commit { epoch: u64, removed: bool },
    /// A proposal was stored for the next commit.
    Proposal,
}

fn group_config_create(external_senders: Vec<ExternalSender>) -> Result<MlsGroupCreateConfig, Error> {
    let builder = MlsGroupCreateConfig::builder()
        .ciphersuite(CIPHERSUITE)
        .use_ratchet_tree_extension(true)
        .wire_format_policy(MIXED_PLAINTEXT_WIRE_FORMAT_POLICY);
    let builder = if external_senders.is_empty() {
        builder
    } else {
        builder.with_group_context_extensions(
            Extensions::single(Extension::ExternalSenders(external_senders))
                .map_err(err("extensions"))?,
        )
    };
    Ok(builder.build())
}

fn group_config_join() -> MlsGroupJoinConfig {
    MlsGroupJoinConfig::builder()
        .use_ratchet_tree_extension(true)
        .wire_format_policy(MIXED_PLAINTEXT_WIRE_FORMAT_POLICY)
        .build()
}

/// One device's MLS state, all in memory.
pub struct Client {
    provider: OpenMlsRustCrypto,
    signer: SignatureKeyPair,
    credential: CredentialWithKey,
    group: Option<MlsGroup>,
}

impl Client {
    /// A new device for `name`, with a fresh Ed25519 signature key.
    pub fn new(name: &str) -> Result<Self, Error> {
        let provider = OpenMlsRustCrypto::default();
        let signer =
            SignatureKeyPair::new(CIPHERSUITE.signature_algorithm()).map_err(err("sigkey"))?;
        signer.store(provider.storage()).map_err(err("store sigkey"))?;
        let credential = CredentialWithKey {
            credential: BasicCredential::new(name.as_bytes().to_vec()).into(),
            signature_key: signer.to_public_vec().into(),
        };
        Ok(Self { provider, signer, credential, group: None })
    }

    /// The public signature key (what a peer pins).
    pub fn signature_key(&self) -> Vec<u8> {
        self.signer.to_public_vec()
    }

    /// A fresh KeyPackage, as MLSMessage bytes; its private keys stay in this client.
    pub fn key_package(&mut self) -> Result<Vec<u8>, Error> {
        let bundle = KeyPackage::builder()
            .build(CIPHERSUITE, &self.provider, &self.signer, self.credential.clone())
            .map_err(err("key package"))?;
        MlsMessageOut::from(bundle.key_package().clone())
            .to_bytes()
            .map_err(err("encode"))
    }

    /// Creates a group with us as the only member. `external_senders` are the
    /// (signature key, name) pairs allowed to send external proposals (the relay).
    pub fn create_group(&mut self, group_id: &[u8], external_senders: &[(Vec<u8>, String)]) -> Result<(), Error> {
        let senders = external_senders
            .iter()
            .map(|(key, name)| {
                ExternalSender::new(key.clone().into(), BasicCredential::new(name.as_bytes().to_vec()).into())
            })
            .collect();
        let group = MlsGroup::new_with_group_id(
            &self.provider,
            &self.signer,
            &group_config_create(senders)?,
            GroupId::from_slice(group_id),
            self.credential.clone(),
        )
        .map_err(err("new group"))?;
        self.group = Some(group);
        Ok(())
    }

    fn group(&mut self) -> Result<&mut MlsGroup, Error> {
        self.group.as_mut().ok_or_else(|| Error("no group".into()))
    }

    /// Commits adding the members whose KeyPackages (MLSMessage bytes) are given.
    /// Returns (commit, welcome). The commit stays pending until `confirm` (the relay
    /// accepted it for this epoch) or `discard` (the relay refused it: another commit won).
    pub fn add_members(&mut self, key_packages: &[Vec<u8>]) -> Result<(Vec<u8>, Vec<u8>), Error> {
        let mut kps = Vec::new();
        for bytes in key_packages {
            let msg = MlsMessageIn::tls_deserialize_exact(bytes).map_err(err("decode kp"))?;
            let MlsMessageBodyIn::KeyPackage(kp) = msg.extract() else {
                return Err(Error("not a key package".into()));
            };
            kps.push(kp.validate(self.provider.crypto(), ProtocolVersion::Mls10).map_err(err("validate kp"))?);
        }
        let provider = &self.provider;
        let signer = &self.signer;
        let group = self.group.as_mut().ok_or_else(|| Error("no group".into()))?;
        let (commit, welcome, _) = group.add_members(provider, signer, &kps).map_err(err("add"))?;
        Ok((commit.to_bytes().map_err(err("encode"))?, welcome.to_bytes().map_err(err("encode"))?))
    }

    /// Commits removing every member whose credential identity is `name`. Returns the commit.
    pub fn remove_member(&mut self, name: &str) -> Result<Vec<u8>, Error> {
        let provider = &self.provider;
        let signer = &self.signer;
        let group = self.group.as_mut().ok_or_else(|| Error("no group".into()))?;
        let leaves: Vec<LeafNodeIndex> = group
            .members()
            .filter(|m| m.credential.serialized_content() == name.as_bytes())
            .map(|m| m.index)
            .collect();
        if leaves.is_empty() {
            return Err(Error(format!("no member {name}")));
        }
        let (commit, _, _) = group.remove_members(provider, signer, &leaves).map_err(err("remove"))?;
        commit.to_bytes().map_err(err("encode"))
    }

    /// Commits the proposals received so far (e.g. the relay's external Remove).
    pub fn commit_pending(&mut self) -> Result<Vec<u8>, Error> {
        let provider = &self.provider;
        let signer = &self.signer;
        let group = self.group.as_mut().ok_or_else(|| Error("no group".into()))?;
        let (commit, _, _) = group.commit_to_pending_proposals(provider, signer).map_err(err("commit"))?;
        commit.to_bytes().map_err(err("encode"))
    }

    /// The relay accepted our pending commit: move to the next epoch.
    pub fn confirm(&mut self) -> Result<u64, Error> {
        let provider = &self.provider;
        let group = self.group.as_mut().ok_or_else(|| Error("no group".into()))?;
        group.merge_pending_commit(provider).map_err(err("merge"))?;
        Ok(group.epoch().as_u64())
    }

    /// The relay refused our pending commit: forget it, process the winner, retry.
    pub fn discard(&mut self) -> Result<(), Error> {
        let provider = &self.provider;
        let group = self.group.as_mut().ok_or_else(|| Error("no group".into()))?;
        group.clear_pending_commit(provider.storage()).map_err(err("clear"))
    }

    /// Joins from a Welcome (MLSMessage bytes) made for one of our KeyPackages.
    pub fn join(&mut self, welcome: &[u8]) -> Result<u64, Error> {
        let msg = MlsMessageIn::tls_deserialize_exact(welcome).map_err(err("decode welcome"))?;
        let MlsMessageBodyIn::Welcome(welcome) = msg.extract() else {
            return Err(Error("not a welcome".into()));
        };
        let staged = StagedWelcome::new_from_welcome(&self.provider, &group_config_join(), welcome, None)
            .map_err(err("welcome"))?;
        let group = staged.into_group(&self.provider).map_err(err("into group"))?;
        let epoch = group.epoch().as_u64();
        self.group = Some(group);
        Ok(epoch)
    }

    /// Joins by External Commit from a GroupInfo (MLSMessage bytes, with ratchet tree),
    /// as the relay would hand out when nobody else is online. Returns the commit; it
    /// stays pending until `confirm`.
    pub fn join_external(&mut self, group_info: &[u8]) -> Result<Vec<u8>, Error> {
        let msg = MlsMessageIn::tls_deserialize_exact(group_info).map_err(err("decode group info"))?;
        let MlsMessageBodyIn::GroupInfo(info) = msg.extract() else {
            return Err(Error("not a group info".into()));
        };
        let (group, bundle) = MlsGroup::external_commit_builder()
            .with_config(group_config_join())
            .build_group(&self.provider, info, self.credential.clone())
            .map_err(err("external commit"))?
            .load_psks(self.provider.storage())
            .map_err(err("psks"))?
            .build(self.provider.rand(), self.provider.crypto(), &self.signer, |_| true)
            .map_err(err("external commit build"))?
            .finalize(&self.provider)
            .map_err(err("external commit finalize"))?;
        self.group = Some(group);
        let (commit, _, _) = bundle.into_contents();
        commit.to_bytes().map_err(err("encode"))
    }

    /// Encrypts an application message for the group.
    pub fn encrypt(&mut self, plaintext: &[u8]) -> Result<Vec<u8>, Error> {
        let provider = &self.provider;
        let signer = &self.signer;
        let group = self.group.as_mut().ok_or_else(|| Error("no group".into()))?;
        let msg = group.create_message(provider, signer, plaintext).map_err(err("encrypt"))?;
        msg.to_bytes().map_err(err("encode"))
    }

    /// Processes one incoming MLSMessage (application message, proposal or commit).
    pub fn process(&mut self, bytes: &[u8]) -> Result<Event, Error> {
        let msg = MlsMessageIn::tls_deserialize_exact(bytes).map_err(err("decode"))?;
        let protocol = msg.try_into_protocol_message().map_err(err("not a group message"))?;
        let provider = &self.provider;
        let group = self.group.as_mut().ok_or_else(|| Error("no group".into()))?;
        let processed = group.process_message(provider, protocol).map_err(err("process"))?;
        match processed.into_content() {
            ProcessedMessageContent::ApplicationMessage(app) => Ok(Event::Application(app.into_bytes())),
            ProcessedMessageContent::StagedCommitMessage(staged) => {
                let removed = staged.self_removed();
                group.merge_staged_commit(provider, *staged).map_err(err("merge"))?;
                Ok(Event::Commit { epoch: group.epoch().as_u64(), removed })
            }
            ProcessedMessageContent::ProposalMessage(proposal) => {
                group.store_pending_proposal(provider.storage(), *proposal).map_err(err("store"))?;
                Ok(Event::Proposal)
            }
            ProcessedMessageContent::ExternalJoinProposalMessage(proposal) => {
                group.store_pending_proposal(provider.storage(), *proposal).map_err(err("store"))?;
                Ok(Event::Proposal)
            }
            other => Err(Error(format!("unexpected content {other:?}"))),
        }
    }

    /// GroupInfo (with ratchet tree and external public key) for External Commits.
    pub fn group_info(&mut self) -> Result<Vec<u8>, Error> {
        let crypto = self.provider.crypto();
        let signer = &self.signer;
        let group = self.group.as_ref().ok_or_else(|| Error("no group".into()))?;
        group.export_group_info(crypto, signer, true).map_err(err("group info"))?.to_bytes().map_err(err("encode"))
    }

    /// The group's epoch.
    pub fn epoch(&mut self) -> Result<u64, Error> {
        Ok(self.group()?.epoch().as_u64())
    }

    /// The members' names, in leaf order.
    pub fn members(&mut self) -> Result<Vec<String>, Error> {
        Ok(self
            .group()?
            .members()
            .map(|m| String::from_utf8_lossy(m.credential.serialized_content()).into_owned())
            .collect())
    }

    /// The group id and our leaf index, for building external proposals in tests.
    pub fn leaf_of(&mut self, name: &str) -> Result<u32, Error> {
        self.group()?
            .members()
            .find(|m| m.credential.serialized_content() == name.as_bytes())
            .map(|m| m.index.u32())
            .ok_or_else(|| Error(format!("no member {name}")))
    }
}

/// The relay's side, as an MLS external sender: it signs Remove proposals and never
/// holds a group secret.
pub struct ExternalSenderKey {
    signer: SignatureKeyPair,
}

impl ExternalSenderKey {
    /// A fresh Ed25519 key for the relay.
    pub fn new() -> Result<Self, Error> {
        Ok(Self { signer: SignatureKeyPair::new(CIPHERSUITE.signature_algorithm()).map_err(err("sigkey"))? })
    }

    /// The public key to put in the group's `external_senders` extension.
    pub fn public(&self) -> Vec<u8> {
        self.signer.to_public_vec()
    }

    /// An external Remove proposal for `leaf` in `group_id` at `epoch`, as MLSMessage bytes.
    pub fn propose_remove(&self, group_id: &[u8], epoch: u64, leaf: u32) -> Result<Vec<u8>, Error> {
        let msg = ExternalProposal::new_remove::<OpenMlsRustCrypto>(
            LeafNodeIndex::new(leaf),
            GroupId::from_slice(group_id),
            GroupEpoch::from(epoch),
            &self.signer,
            SenderExtensionIndex::new(0),
        )
        .map_err(err("external remove"))?;
        msg.to_bytes().map_err(err("encode"))
    }
}

/// Reads the epoch and content type a relay needs to order a handshake message, without
/// any group secret: (epoch, is_commit). Application messages (PrivateMessage) give
/// (epoch, false) from their clear header.
pub fn peek(bytes: &[u8]) -> Result<(u64, bool), Error> {
    let msg = MlsMessageIn::tls_deserialize_exact(bytes).map_err(err("decode"))?;
    let protocol = msg.try_into_protocol_message().map_err(err("not a group message"))?;
    Ok((protocol.epoch().as_u64(), protocol.content_type() == ContentType::Commit))
}
