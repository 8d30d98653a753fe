//! The one error type of a device's side of end-to-end rooms: what
//! [`crate::Device`], [`crate::E2eRooms`] and [`crate::Pins`] return. Each
//! variant is something the caller can act on or show; openmls's own
//! errors, which the caller cannot act on, are carried as text.

use std::fmt;

/// Why a device operation failed. Nothing is lost on an error: the group
/// stays as it was before the call.
#[derive(Debug)]
pub enum E2eError {
    /// Reading or writing the state directory failed.
    Io(std::io::Error),
    /// A state file is not one this crate wrote (or was cut short).
    CorruptState(&'static str),
    /// The state directory holds the device of another member.
    OtherMember(String),
    /// Bytes that are not the MLS message expected here.
    Malformed(&'static str),
    /// No end-to-end group for this room on this device.
    NoGroup(String),
    /// The device already has a group for this room.
    GroupExists(String),
    /// A message of another group than this room's.
    WrongGroup,
    /// This device was removed from the room's group: it reads nothing
    /// sent since.
    Removed,
    /// The message was sent before this device joined the group: MLS
    /// gives a new member no key to what came before ("sent before you
    /// joined").
    BeforeJoined {
        /// The message's epoch.
        epoch: u64,
        /// The first epoch this device had.
        joined: u64,
    },
    /// The message is from an epoch whose secrets this device no longer
    /// keeps ([`crate::PAST_EPOCHS`] are kept).
    TooOld {
        /// The message's epoch.
        epoch: u64,
        /// The group's epoch.
        current: u64,
    },
    /// The message is from an epoch this device has not reached: it
    /// missed a commit (process the room's messages in order).
    FutureEpoch {
        /// The message's epoch.
        epoch: u64,
        /// The group's epoch.
        current: u64,
    },
    /// A message this device already read: a handshake from a past epoch,
    /// or an application message whose key it already used (history
    /// replayed after a reconnect). Nothing to show.
    Duplicate,
    /// One of this device's own application messages (it keeps no key
    /// to read them back).
    OwnMessage,
    /// A commit is waiting for the relay's answer (`mls-ok` or
    /// `mls-refused`); one commit at a time per room.
    CommitPending,
    /// There is no pending commit to confirm.
    NoPendingCommit,
    /// This device's own pending commit (an External Commit too), read back from the room (its
    /// history after a reconnect or a restart): the relay took it. Nothing
    /// changed; merge it with [`crate::E2eRooms::accepted`], as on
    /// `mls-ok`.
    OwnPendingCommit,
    /// The group has no member with this name (other than this device).
    NotMember(String),
    /// openmls refused the operation or the message.
    Mls(String),
}

impl fmt::Display for E2eError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            E2eError::Io(e) => write!(f, "state directory: {e}"),
            E2eError::CorruptState(what) => write!(f, "state file {what} is damaged"),
            E2eError::OtherMember(name) => write!(f, "the state directory is {name}'s device"),
            E2eError::Malformed(what) => write!(f, "not an MLS {what}"),
            E2eError::NoGroup(room) => write!(f, "no end-to-end group for #{room}"),
            E2eError::GroupExists(room) => write!(f, "already in the group of #{room}"),
            E2eError::WrongGroup => f.write_str("a message of another group"),
            E2eError::Removed => f.write_str("you were removed from this group"),
            E2eError::BeforeJoined { .. } => f.write_str("sent before you joined"),
            E2eError::TooOld { epoch, current } => write!(
                f,
                "from epoch {epoch}, too old to open (the group is at {current})"
            ),
            E2eError::FutureEpoch { epoch, current } => write!(
                f,
                "from epoch {epoch}, ahead of this device (at {current}): a commit was missed"
            ),
            E2eError::Duplicate => f.write_str("already read"),
            E2eError::OwnMessage => f.write_str("your own message"),
            E2eError::CommitPending => f.write_str("a commit is waiting for the relay's answer"),
            E2eError::NoPendingCommit => f.write_str("no commit is waiting"),
            E2eError::OwnPendingCommit => f.write_str("your own commit, which the relay took"),
            E2eError::NotMember(name) => write!(f, "{name} has no device in the group"),
            E2eError::Mls(text) => write!(f, "MLS: {text}"),
        }
    }
}

impl std::error::Error for E2eError {}

impl From<std::io::Error> for E2eError {
    fn from(e: std::io::Error) -> Self {
        E2eError::Io(e)
    }
}

/// Wraps an openmls error as [`E2eError::Mls`], naming the operation.
pub(crate) fn mls<E: fmt::Debug>(what: &'static str) -> impl FnOnce(E) -> E2eError {
    move |e| E2eError::Mls(format!("{what}: {e:?}"))
}
