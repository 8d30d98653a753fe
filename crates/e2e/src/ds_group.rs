//! The relay's public view of an end-to-end room's group: openmls's
//! `PublicGroup`, the state MLS gives a Delivery Service (the public ratchet
//! tree, the group context, pending proposals), with no group secret.
//!
//! With it the relay checks every handshake message before it orders it:
//! a commit or proposal must be signed by a leaf of the group (or be a
//! valid External Commit), and apply to the group as it stands; a GroupInfo
//! must be signed by a member and describe the group as it stands. A room
//! member outside the group cannot take an epoch with a commit of another
//! group of the same id, nor replace the GroupInfo that devices join by.
//! A commit that leaves a leaf of someone whose removal is due is refused.
//!
//! The view is kept across restarts as openmls's storage entries
//! ([`GroupView::encode`]).

use openmls::prelude::tls_codec::Deserialize as _;
use openmls::prelude::{
    GroupId, MlsMessageBodyIn, MlsMessageIn, ProcessedMessageContent, ProposalStore, PublicGroup,
};
use openmls_rust_crypto::OpenMlsRustCrypto;
use openmls_traits::OpenMlsProvider as _;

use crate::ds::DsError;

/// A group as the relay may know it.
pub struct GroupView {
    provider: OpenMlsRustCrypto,
    group: PublicGroup,
}

impl std::fmt::Debug for GroupView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupView")
            .field("epoch", &self.epoch())
            .finish_non_exhaustive()
    }
}

/// What a commit the view took did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitTaken {
    /// The group's epoch after it.
    pub epoch: u64,
    /// The names whose every leaf it removed.
    pub removed: Vec<String>,
}

impl GroupView {
    /// The view of a group from a GroupInfo (an `MLSMessage` holding one,
    /// with its ratchet tree): its signature and tree are checked.
    pub fn from_group_info(bytes: &[u8]) -> Result<GroupView, DsError> {
        let message = MlsMessageIn::tls_deserialize_exact(bytes).map_err(|_| DsError::Malformed)?;
        let MlsMessageBodyIn::GroupInfo(info) = message.extract() else {
            return Err(DsError::Unsupported);
        };
        let tree = info
            .extensions()
            .ratchet_tree()
            .ok_or(DsError::BadGroupInfo)?
            .ratchet_tree()
            .clone();
        let provider = OpenMlsRustCrypto::default();
        let (group, _) = PublicGroup::from_external(
            provider.crypto(),
            provider.storage(),
            tree,
            info,
            ProposalStore::new(),
        )
        .map_err(|_| DsError::BadGroupInfo)?;
        Ok(GroupView { provider, group })
    }

    /// The group's epoch.
    pub fn epoch(&self) -> u64 {
        self.group.group_context().epoch().as_u64()
    }

    /// The names of the group's leaves (one per device), in leaf order.
    pub fn names(&self) -> Vec<String> {
        self.group
            .members()
            .map(|m| String::from_utf8_lossy(m.credential.serialized_content()).into_owned())
            .collect()
    }

    /// Checks a GroupInfo against the group as it stands: signed by a
    /// member, for this epoch, this tree and this transcript.
    pub fn check_group_info(&self, bytes: &[u8]) -> Result<(), DsError> {
        let other = GroupView::from_group_info(bytes)?;
        if other.group.group_context() == self.group.group_context() {
            Ok(())
        } else {
            Err(DsError::BadGroupInfo)
        }
    }

    /// Checks a commit (a `PublicMessage`) against the group and, if it
    /// holds and removes every leaf of each of `must_remove`, applies it.
    pub fn take_commit(
        &mut self,
        bytes: &[u8],
        must_remove: &[String],
    ) -> Result<CommitTaken, DsError> {
        let ProcessedMessageContent::StagedCommitMessage(staged) = self.process(bytes)? else {
            return Err(DsError::BadHandshake);
        };
        let removed_leaves: Vec<_> = staged
            .remove_proposals()
            .map(|p| p.remove_proposal().removed())
            .collect();
        let name_of = |m: &openmls::prelude::Member| {
            String::from_utf8_lossy(m.credential.serialized_content()).into_owned()
        };
        for name in must_remove {
            let left = self
                .group
                .members()
                .any(|m| name_of(&m) == *name && !removed_leaves.contains(&m.index));
            if left {
                return Err(DsError::RemovalMissing(name.clone()));
            }
        }
        let mut removed: Vec<String> = self
            .group
            .members()
            .filter(|m| removed_leaves.contains(&m.index))
            .map(|m| name_of(&m))
            .collect();
        removed.sort();
        removed.dedup();
        self.group
            .merge_commit(self.provider.storage(), *staged)
            .map_err(|_| DsError::BadHandshake)?;
        Ok(CommitTaken {
            epoch: self.epoch(),
            removed,
        })
    }

    /// Checks a proposal (a `PublicMessage`) against the group and keeps it
    /// for the commit that may name it.
    pub fn take_proposal(&mut self, bytes: &[u8]) -> Result<(), DsError> {
        match self.process(bytes)? {
            ProcessedMessageContent::ProposalMessage(proposal)
            | ProcessedMessageContent::ExternalJoinProposalMessage(proposal) => self
                .group
                .add_proposal(self.provider.storage(), *proposal)
                .map_err(|_| DsError::BadHandshake),
            _ => Err(DsError::BadHandshake),
        }
    }

    /// A handshake message (a `PublicMessage`) checked against the group
    /// as it stands, not yet applied.
    fn process(&self, bytes: &[u8]) -> Result<ProcessedMessageContent, DsError> {
        let message = MlsMessageIn::tls_deserialize_exact(bytes).map_err(|_| DsError::Malformed)?;
        let protocol = message
            .try_into_protocol_message()
            .map_err(|_| DsError::Unsupported)?;
        let processed = self
            .group
            .process_message(self.provider.crypto(), protocol)
            .map_err(|_| DsError::BadHandshake)?;
        Ok(processed.into_content())
    }

    /// The view as bytes: openmls's storage entries, sorted, each
    /// length-prefixed.
    pub fn encode(&self) -> Vec<u8> {
        let values = self
            .provider
            .storage()
            .values
            .read()
            .map(|values| {
                let mut entries: Vec<(Vec<u8>, Vec<u8>)> =
                    values.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
                entries.sort();
                entries
            })
            .unwrap_or_default();
        let mut out = Vec::new();
        out.extend_from_slice(&(values.len() as u32).to_le_bytes());
        for (key, value) in values {
            for part in [key, value] {
                out.extend_from_slice(&(part.len() as u32).to_le_bytes());
                out.extend_from_slice(&part);
            }
        }
        out
    }

    /// Reads back what [`GroupView::encode`] wrote, for group `group_id`.
    pub fn decode(bytes: &[u8], group_id: &[u8]) -> Result<GroupView, DsError> {
        let mut reader = Reader(bytes);
        let count = reader.u32()?;
        let provider = OpenMlsRustCrypto::default();
        {
            let mut values = provider
                .storage()
                .values
                .write()
                .map_err(|_| DsError::Malformed)?;
            for _ in 0..count {
                let key = reader.bytes()?.to_vec();
                let value = reader.bytes()?.to_vec();
                values.insert(key, value);
            }
        }
        if !reader.0.is_empty() {
            return Err(DsError::Malformed);
        }
        let group = PublicGroup::load(provider.storage(), &GroupId::from_slice(group_id))
            .map_err(|_| DsError::Malformed)?
            .ok_or(DsError::Malformed)?;
        Ok(GroupView { provider, group })
    }
}

/// Reads the encoded view, every length checked.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], DsError> {
        if self.0.len() < n {
            return Err(DsError::Malformed);
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn u32(&mut self) -> Result<u32, DsError> {
        let mut array = [0; 4];
        array.copy_from_slice(self.take(4)?);
        Ok(u32::from_le_bytes(array))
    }

    fn bytes(&mut self) -> Result<&'a [u8], DsError> {
        let n = self.u32()? as usize;
        self.take(n)
    }
}
