//! A device's MLS for the end-to-end rooms' tests, straight over openmls
//! (as the spike in spikes/e2e-mls proved it): its key, KeyPackages, one
//! group, and the operations a member's client makes. The relay never
//! sees any of it but the bytes.

use openmls::prelude::tls_codec::Deserialize as _;
use openmls::prelude::*;
use openmls_basic_credential::SignatureKeyPair;
use openmls_rust_crypto::OpenMlsRustCrypto;

const SUITE: Ciphersuite = Ciphersuite::MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519;

/// What processing a group message did.
#[derive(Debug, PartialEq, Eq)]
pub enum Seen {
    Application(Vec<u8>),
    Commit { epoch: u64, removed_me: bool },
    Proposal,
}

/// One device of a member.
pub struct Device {
    provider: OpenMlsRustCrypto,
    signer: SignatureKeyPair,
    credential: CredentialWithKey,
    pub group: Option<MlsGroup>,
}

fn join_config() -> MlsGroupJoinConfig {
    MlsGroupJoinConfig::builder()
        .use_ratchet_tree_extension(true)
        .wire_format_policy(MIXED_PLAINTEXT_WIRE_FORMAT_POLICY)
        .max_past_epochs(2)
        .build()
}

impl Device {
    pub fn new(name: &str) -> Device {
        let provider = OpenMlsRustCrypto::default();
        let signer = SignatureKeyPair::new(SUITE.signature_algorithm()).unwrap();
        signer.store(provider.storage()).unwrap();
        let credential = CredentialWithKey {
            credential: BasicCredential::new(name.as_bytes().to_vec()).into(),
            signature_key: signer.to_public_vec().into(),
        };
        Device {
            provider,
            signer,
            credential,
            group: None,
        }
    }

    pub fn key_package(&self) -> Vec<u8> {
        let bundle = KeyPackage::builder()
            .build(SUITE, &self.provider, &self.signer, self.credential.clone())
            .unwrap();
        MlsMessageOut::from(bundle.key_package().clone())
            .to_bytes()
            .unwrap()
    }

    /// Makes the group of room `room`, and returns its GroupInfo.
    pub fn create(&mut self, room: &str) -> Vec<u8> {
        let config = MlsGroupCreateConfig::builder()
            .ciphersuite(SUITE)
            .use_ratchet_tree_extension(true)
            .wire_format_policy(MIXED_PLAINTEXT_WIRE_FORMAT_POLICY)
            .max_past_epochs(2)
            .build();
        let group = MlsGroup::new_with_group_id(
            &self.provider,
            &self.signer,
            &config,
            GroupId::from_slice(&eaxchat_e2e::group_id(room)),
            self.credential.clone(),
        )
        .unwrap();
        self.group = Some(group);
        self.group_info()
    }

    fn group(&mut self) -> &mut MlsGroup {
        self.group.as_mut().expect("a group")
    }

    pub fn group_info(&mut self) -> Vec<u8> {
        let (crypto, signer) = (self.provider.crypto(), &self.signer);
        let group = self.group.as_ref().expect("a group");
        group
            .export_group_info(crypto, signer, true)
            .unwrap()
            .to_bytes()
            .unwrap()
    }

    /// Commits adding the KeyPackages' devices: (commit, welcome), pending.
    pub fn add(&mut self, packages: &[Vec<u8>]) -> (Vec<u8>, Vec<u8>) {
        let packages: Vec<KeyPackage> = packages
            .iter()
            .map(|bytes| {
                let MlsMessageBodyIn::KeyPackage(package) =
                    MlsMessageIn::tls_deserialize_exact(bytes)
                        .unwrap()
                        .extract()
                else {
                    panic!("not a KeyPackage");
                };
                package
                    .validate(self.provider.crypto(), ProtocolVersion::Mls10)
                    .unwrap()
            })
            .collect();
        let (provider, signer) = (&self.provider, &self.signer);
        let group = self.group.as_mut().expect("a group");
        let (commit, welcome, _) = group.add_members(provider, signer, &packages).unwrap();
        (commit.to_bytes().unwrap(), welcome.to_bytes().unwrap())
    }

    /// Commits removing every leaf of `name`, pending.
    pub fn remove(&mut self, name: &str) -> Vec<u8> {
        let (provider, signer) = (&self.provider, &self.signer);
        let group = self.group.as_mut().expect("a group");
        let leaves: Vec<LeafNodeIndex> = group
            .members()
            .filter(|m| m.credential.serialized_content() == name.as_bytes())
            .map(|m| m.index)
            .collect();
        let (commit, _, _) = group.remove_members(provider, signer, &leaves).unwrap();
        commit.to_bytes().unwrap()
    }

    /// The relay took our pending commit.
    pub fn merge(&mut self) {
        let provider = &self.provider;
        let group = self.group.as_mut().expect("a group");
        group.merge_pending_commit(provider).unwrap();
    }

    /// The relay refused our pending commit.
    pub fn discard(&mut self) {
        let storage = self.provider.storage();
        let group = self.group.as_mut().expect("a group");
        group.clear_pending_commit(storage).unwrap();
    }

    pub fn join(&mut self, welcome: &[u8]) {
        let MlsMessageBodyIn::Welcome(welcome) = MlsMessageIn::tls_deserialize_exact(welcome)
            .unwrap()
            .extract()
        else {
            panic!("not a Welcome");
        };
        let staged =
            StagedWelcome::new_from_welcome(&self.provider, &join_config(), welcome, None).unwrap();
        self.group = Some(staged.into_group(&self.provider).unwrap());
    }

    pub fn encrypt(&mut self, text: &str) -> Vec<u8> {
        let (provider, signer) = (&self.provider, &self.signer);
        let group = self.group.as_mut().expect("a group");
        group
            .create_message(provider, signer, text.as_bytes())
            .unwrap()
            .to_bytes()
            .unwrap()
    }

    pub fn process(&mut self, bytes: &[u8]) -> Result<Seen, String> {
        let message = MlsMessageIn::tls_deserialize_exact(bytes).map_err(|e| format!("{e:?}"))?;
        let protocol = message
            .try_into_protocol_message()
            .map_err(|e| format!("{e:?}"))?;
        let provider = &self.provider;
        let group = self.group.as_mut().ok_or("no group")?;
        let processed = group
            .process_message(provider, protocol)
            .map_err(|e| format!("{e:?}"))?;
        match processed.into_content() {
            ProcessedMessageContent::ApplicationMessage(app) => {
                Ok(Seen::Application(app.into_bytes()))
            }
            ProcessedMessageContent::StagedCommitMessage(staged) => {
                let removed_me = staged.self_removed();
                group.merge_staged_commit(provider, *staged).unwrap();
                Ok(Seen::Commit {
                    epoch: group.epoch().as_u64(),
                    removed_me,
                })
            }
            _ => Ok(Seen::Proposal),
        }
    }

    pub fn epoch(&mut self) -> u64 {
        self.group().epoch().as_u64()
    }
}
