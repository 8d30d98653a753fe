//! Reading what the relay delivers into an end-to-end room: one
//! MLSMessage in, one [`Event`] out (or an [`E2eError`] that says why it
//! cannot be read: sent before this device joined, too old, a missed
//! commit, removed). Messages must be given in room order.
//!
//! The epoch checks come first, from the message's clear header, so the
//! "sent before you joined" case is told apart from damage and never
//! reaches openmls.

use openmls::framing::errors::{MessageDecryptionError, SecretTreeError};
use openmls::prelude::tls_codec::Deserialize as _;
use openmls::prelude::{
    BasicCredential, ContentType, MlsMessageIn, ProcessMessageError, ProcessedMessageContent,
    Sender, ValidationError,
};

use crate::error::mls;
use openmls_traits::OpenMlsProvider as _;

use crate::rooms::{Member, name_of, room_entry};
use crate::{E2eError, E2eRooms, PAST_EPOCHS};

/// What one incoming group message was.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// An application message, decrypted.
    Application {
        /// The sender's name (its credential's identity, authenticated by
        /// MLS).
        from: String,
        /// The sender device's signature key: `None` only for a message
        /// from a past epoch, whose leaf this device no longer reads.
        device_key: Option<Vec<u8>>,
        /// The text (invalid UTF-8 is shown with replacement characters).
        text: String,
    },
    /// A commit was merged: the group is at `epoch`. Observe the room's
    /// [`E2eRooms::members`] with [`crate::Pins`] after it.
    Commit {
        /// Who committed (for an External Commit, the device that joined).
        by: String,
        /// The new epoch.
        epoch: u64,
        /// Devices the commit added (by Add or External Commit).
        added: Vec<Member>,
        /// Devices the commit removed.
        removed: Vec<Member>,
        /// This device was removed: the room reads nothing more.
        removed_me: bool,
    },
    /// A proposal, kept for the next commit.
    Proposal {
        /// Who proposed it.
        from: String,
    },
}

impl E2eRooms {
    /// Processes one group message (MLSMessage bytes) delivered in
    /// `room`, in room order. A commit of another member while this
    /// device's own is pending means the relay took theirs: the pending
    /// one is dropped (the relay's `mls-refused` then follows). The pending
    /// commit itself, read back, is [`E2eError::OwnPendingCommit`].
    pub fn process(&mut self, room: &str, bytes: &[u8]) -> Result<Event, E2eError> {
        let message = MlsMessageIn::tls_deserialize_exact(bytes)
            .map_err(|_| E2eError::Malformed("message"))?;
        let message = message
            .try_into_protocol_message()
            .map_err(|_| E2eError::Malformed("group message"))?;
        let device = &self.device;
        let state = room_entry(&mut self.rooms, room)?;
        let group = &mut state.group;
        if message.group_id() != group.group_id() {
            return Err(E2eError::WrongGroup);
        }
        if !group.is_active() {
            return Err(E2eError::Removed);
        }
        if state.external_pending {
            // Our own External Commit read back (after a restart: the
            // caller no longer knows it) means the relay took it.
            if state.external_commit == bytes {
                return Err(E2eError::OwnPendingCommit);
            }
            return Err(E2eError::CommitPending);
        }
        let epoch = message.epoch().as_u64();
        let current = group.epoch().as_u64();
        if epoch < state.joined {
            return Err(E2eError::BeforeJoined {
                epoch,
                joined: state.joined,
            });
        }
        if epoch > current {
            return Err(E2eError::FutureEpoch { epoch, current });
        }
        if message.content_type() != ContentType::Application && epoch < current {
            return Err(E2eError::Duplicate);
        }
        if current - epoch > PAST_EPOCHS as u64 {
            return Err(E2eError::TooOld { epoch, current });
        }
        let processed = group
            .process_message(&device.provider, message)
            .map_err(|e| match e {
                ProcessMessageError::ValidationError(ValidationError::UnableToDecrypt(
                    MessageDecryptionError::SecretTreeError(SecretTreeError::SecretReuseError),
                )) => E2eError::Duplicate,
                other => E2eError::Mls(format!("process: {other:?}")),
            })?;
        let sender = processed.sender().clone();
        let from = BasicCredential::try_from(processed.credential().clone())
            .map(|c| String::from_utf8_lossy(c.identity()).into_owned())
            .map_err(mls("credential"))?;
        let event = match processed.into_content() {
            ProcessedMessageContent::ApplicationMessage(app) => {
                let device_key = match sender {
                    Sender::Member(leaf) if epoch == current => {
                        group.member_at(leaf).map(|m| m.signature_key)
                    }
                    _ => None,
                };
                Event::Application {
                    from,
                    device_key,
                    text: String::from_utf8_lossy(&app.into_bytes()).into_owned(),
                }
            }
            ProcessedMessageContent::StagedCommitMessage(staged) => {
                let mut added: Vec<Member> = staged
                    .add_proposals()
                    .map(|queued| {
                        let leaf = queued.add_proposal().key_package().leaf_node();
                        Member {
                            name: name_of(leaf.credential()),
                            signature_key: leaf.signature_key().as_slice().to_vec(),
                        }
                    })
                    .collect();
                if let (Sender::NewMemberCommit, Some(leaf)) =
                    (&sender, staged.update_path_leaf_node())
                {
                    added.push(Member {
                        name: name_of(leaf.credential()),
                        signature_key: leaf.signature_key().as_slice().to_vec(),
                    });
                }
                let removed = staged
                    .remove_proposals()
                    .filter_map(|queued| group.member_at(queued.remove_proposal().removed()))
                    .map(|m| Member {
                        name: name_of(&m.credential),
                        signature_key: m.signature_key,
                    })
                    .collect();
                let removed_me = staged.self_removed();
                // The relay took this commit, so not ours (dropped only now
                // that theirs is known to be sound).
                group
                    .clear_pending_commit(device.provider.storage())
                    .map_err(mls("clear commit"))?;
                group
                    .merge_staged_commit(&device.provider, *staged)
                    .map_err(mls("merge commit"))?;
                Event::Commit {
                    by: from,
                    epoch: group.epoch().as_u64(),
                    added,
                    removed,
                    removed_me,
                }
            }
            ProcessedMessageContent::ProposalMessage(proposal) => {
                group
                    .store_pending_proposal(device.provider.storage(), *proposal)
                    .map_err(mls("store proposal"))?;
                Event::Proposal { from }
            }
            ProcessedMessageContent::ExternalJoinProposalMessage(proposal) => {
                group
                    .store_pending_proposal(device.provider.storage(), *proposal)
                    .map_err(mls("store proposal"))?;
                Event::Proposal { from }
            }
            ProcessedMessageContent::OwnPrivateMessage => return Err(E2eError::OwnMessage),
            // openmls matched it to the pending commit by its confirmation tag.
            ProcessedMessageContent::OwnPendingCommit => return Err(E2eError::OwnPendingCommit),
            #[allow(unreachable_patterns)]
            _ => return Err(E2eError::Malformed("group message of a kind not used here")),
        };
        self.save()?;
        Ok(event)
    }
}
