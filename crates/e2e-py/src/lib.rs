//! `eaxchat_mls`: the Python binding over `eaxchat-e2e`, so the Python
//! client's end-to-end rooms run on the same openmls code as `chat` and
//! Python implements no MLS of its own.
//!
//! It owns only the translation: bytes in and out, events as dicts,
//! [`eaxchat_e2e::E2eError`] as Python exceptions (one base class,
//! `E2eError`, and a subclass per case a client acts on). What to do with
//! an event (the group's state machine) is the Python client's
//! (clients/python/eaxchat/e2e.py); every rule of the group is the Rust
//! crate's.

use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard};

use eaxchat_e2e as e2e;
use pyo3::create_exception;
use pyo3::exceptions::PyException;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict};

create_exception!(
    eaxchat_mls,
    E2eError,
    PyException,
    "An end-to-end operation failed; the group stays as it was."
);
create_exception!(
    eaxchat_mls,
    BeforeJoined,
    E2eError,
    "The message was sent before this device joined the group."
);
create_exception!(
    eaxchat_mls,
    Removed,
    E2eError,
    "This device was removed from the room's group."
);
create_exception!(
    eaxchat_mls,
    Duplicate,
    E2eError,
    "A message this device already read (history replayed)."
);
create_exception!(
    eaxchat_mls,
    OwnMessage,
    E2eError,
    "One of this device's own application messages."
);
create_exception!(
    eaxchat_mls,
    CommitPending,
    E2eError,
    "A commit of this device waits for the relay's answer."
);
create_exception!(
    eaxchat_mls,
    OwnPendingCommit,
    E2eError,
    "This device's own pending commit, read back from the room: the relay took it (merge it with accepted)."
);
create_exception!(
    eaxchat_mls,
    MissedCommit,
    E2eError,
    "The message is from an epoch this device has not reached."
);
create_exception!(
    eaxchat_mls,
    TooOld,
    E2eError,
    "The message is from an epoch whose secrets are gone."
);
create_exception!(
    eaxchat_mls,
    NoGroup,
    E2eError,
    "This device has no group for the room."
);
create_exception!(
    eaxchat_mls,
    NotMember,
    E2eError,
    "The group has no device of that name."
);

/// The Python exception for `error`, its message the crate's own text.
fn py_err(error: e2e::E2eError) -> PyErr {
    use e2e::E2eError as E;
    let text = error.to_string();
    match error {
        E::BeforeJoined { .. } => BeforeJoined::new_err(text),
        E::Removed => Removed::new_err(text),
        E::Duplicate => Duplicate::new_err(text),
        E::OwnMessage => OwnMessage::new_err(text),
        E::CommitPending => CommitPending::new_err(text),
        E::OwnPendingCommit => OwnPendingCommit::new_err(text),
        E::FutureEpoch { .. } => MissedCommit::new_err(text),
        E::TooOld { .. } => TooOld::new_err(text),
        E::NoGroup(_) => NoGroup::new_err(text),
        E::NotMember(_) => NotMember::new_err(text),
        _ => E2eError::new_err(text),
    }
}

fn bytes<'py>(py: Python<'py>, data: &[u8]) -> Bound<'py, PyBytes> {
    PyBytes::new(py, data)
}

/// `(name, signature_key)` pairs of members.
fn members<'py>(py: Python<'py>, list: &[e2e::Member]) -> Vec<(String, Bound<'py, PyBytes>)> {
    list.iter()
        .map(|m| (m.name.clone(), bytes(py, &m.signature_key)))
        .collect()
}

/// A device's end-to-end rooms (one MLS group per room), kept in a state
/// directory: every change is saved before a method returns.
#[pyclass(name = "E2eRooms", module = "eaxchat_mls")]
struct PyE2eRooms(Mutex<e2e::E2eRooms>);

/// The value behind a binding object's lock: one call at a time, from
/// any thread (a call that panicked leaves the state as saved).
fn locked<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl PyE2eRooms {
    fn lock(&self) -> MutexGuard<'_, e2e::E2eRooms> {
        locked(&self.0)
    }
}

impl PyPins {
    fn lock(&self) -> MutexGuard<'_, e2e::Pins> {
        locked(&self.0)
    }
}

#[pymethods]
impl PyE2eRooms {
    /// Opens member `name`'s device in `dir` (made on first use).
    #[new]
    fn new(dir: PathBuf, name: &str) -> PyResult<Self> {
        e2e::E2eRooms::open(&dir, name)
            .map(|rooms| Self(Mutex::new(rooms)))
            .map_err(py_err)
    }

    /// The member's name.
    #[getter]
    fn name(&self) -> String {
        self.lock().device().name().to_string()
    }

    /// This device's Ed25519 signature key (what peers pin).
    #[getter]
    fn signature_key<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        bytes(py, self.lock().device().signature_key())
    }

    /// `n` fresh KeyPackages (MLSMessage bytes, for `/keypackage`).
    fn key_packages<'py>(&self, py: Python<'py>, n: usize) -> PyResult<Vec<Bound<'py, PyBytes>>> {
        let packages = self.lock().key_packages(n).map_err(py_err)?;
        Ok(packages.iter().map(|p| bytes(py, p)).collect())
    }

    /// The rooms this device has a group for.
    fn rooms(&self) -> Vec<String> {
        self.lock().rooms().map(str::to_string).collect()
    }

    /// Whether this device has a group for `room`.
    fn has_room(&self, room: &str) -> bool {
        self.lock().rooms().any(|r| r == room)
    }

    /// The group's epoch in `room`.
    fn epoch(&self, room: &str) -> PyResult<u64> {
        self.lock().epoch(room).map_err(py_err)
    }

    /// The members' devices in `room`: a list of `(name, signature_key)`.
    fn members<'py>(
        &self,
        py: Python<'py>,
        room: &str,
    ) -> PyResult<Vec<(String, Bound<'py, PyBytes>)>> {
        let list = self.lock().members(room).map_err(py_err)?;
        Ok(members(py, &list))
    }

    /// Whether a commit of this device in `room` waits for the relay.
    fn is_pending(&self, room: &str) -> PyResult<bool> {
        self.lock().is_pending(room).map_err(py_err)
    }

    /// Creates `room`'s group; returns the GroupInfo to send with `/mls`.
    fn create<'py>(&self, py: Python<'py>, room: &str) -> PyResult<Bound<'py, PyBytes>> {
        Ok(bytes(py, &self.lock().create(room).map_err(py_err)?))
    }

    /// The GroupInfo of `room` at its current epoch.
    fn group_info<'py>(&self, py: Python<'py>, room: &str) -> PyResult<Bound<'py, PyBytes>> {
        Ok(bytes(py, &self.lock().group_info(room).map_err(py_err)?))
    }

    /// Commits adding these KeyPackages; returns `(commit, welcome)`.
    fn add<'py>(
        &self,
        py: Python<'py>,
        room: &str,
        packages: Vec<Vec<u8>>,
    ) -> PyResult<(Bound<'py, PyBytes>, Bound<'py, PyBytes>)> {
        let (commit, welcome) = self.lock().add(room, &packages).map_err(py_err)?;
        Ok((bytes(py, &commit), bytes(py, &welcome)))
    }

    /// Commits removing every device of `name`; returns the commit.
    fn remove<'py>(
        &self,
        py: Python<'py>,
        room: &str,
        name: &str,
    ) -> PyResult<Bound<'py, PyBytes>> {
        Ok(bytes(py, &self.lock().remove(room, name).map_err(py_err)?))
    }

    /// Commits the proposals received so far; returns the commit.
    fn commit_proposals<'py>(&self, py: Python<'py>, room: &str) -> PyResult<Bound<'py, PyBytes>> {
        Ok(bytes(
            py,
            &self.lock().commit_proposals(room).map_err(py_err)?,
        ))
    }

    /// The relay took this device's commit (`mls-ok`): merges it and
    /// returns the new epoch's GroupInfo to send with `/mls`.
    fn accepted<'py>(&self, py: Python<'py>, room: &str) -> PyResult<Bound<'py, PyBytes>> {
        Ok(bytes(py, &self.lock().accepted(room).map_err(py_err)?))
    }

    /// The relay refused this device's commit (`mls-refused`): drops it.
    fn refused(&self, room: &str) -> PyResult<()> {
        self.lock().refused(room).map_err(py_err)
    }

    /// Joins from a Welcome; returns `(room, epoch)`.
    fn join_welcome(&self, welcome: &[u8]) -> PyResult<(String, u64)> {
        self.lock().join_welcome(welcome).map_err(py_err)
    }

    /// Joins by External Commit from a GroupInfo; returns `(room, commit)`.
    fn join_external<'py>(
        &self,
        py: Python<'py>,
        group_info: &[u8],
    ) -> PyResult<(String, Bound<'py, PyBytes>)> {
        let (room, commit) = self.lock().join_external(group_info).map_err(py_err)?;
        Ok((room, bytes(py, &commit)))
    }

    /// Encrypts `text` for `room`: PrivateMessage bytes for `/mls`.
    fn encrypt<'py>(
        &self,
        py: Python<'py>,
        room: &str,
        text: &str,
    ) -> PyResult<Bound<'py, PyBytes>> {
        Ok(bytes(py, &self.lock().encrypt(room, text).map_err(py_err)?))
    }

    /// Deletes this device's group for `room`, if any.
    fn forget(&self, room: &str) -> PyResult<()> {
        self.lock().forget(room).map_err(py_err)
    }

    /// Processes one group message delivered in `room`, in room order.
    /// Returns a dict: `{"kind": "application", "from", "device_key",
    /// "text"}`, `{"kind": "commit", "by", "epoch", "added", "removed",
    /// "removed_me"}` (members as `(name, key)`) or `{"kind": "proposal",
    /// "from"}`.
    fn process<'py>(
        &self,
        py: Python<'py>,
        room: &str,
        data: &[u8],
    ) -> PyResult<Bound<'py, PyDict>> {
        let event = self.lock().process(room, data).map_err(py_err)?;
        let dict = PyDict::new(py);
        match event {
            e2e::Event::Application {
                from,
                device_key,
                text,
            } => {
                dict.set_item("kind", "application")?;
                dict.set_item("from", from)?;
                dict.set_item("device_key", device_key.map(|k| bytes(py, &k)))?;
                dict.set_item("text", text)?;
            }
            e2e::Event::Commit {
                by,
                epoch,
                added,
                removed,
                removed_me,
            } => {
                dict.set_item("kind", "commit")?;
                dict.set_item("by", by)?;
                dict.set_item("epoch", epoch)?;
                dict.set_item("added", members(py, &added))?;
                dict.set_item("removed", members(py, &removed))?;
                dict.set_item("removed_me", removed_me)?;
            }
            e2e::Event::Proposal { from } => {
                dict.set_item("kind", "proposal")?;
                dict.set_item("from", from)?;
            }
        }
        Ok(dict)
    }
}

/// The pinned device keys per peer name (trust on first use), kept in a
/// state directory.
#[pyclass(name = "Pins", module = "eaxchat_mls")]
struct PyPins(Mutex<e2e::Pins>);

#[pymethods]
impl PyPins {
    /// Opens the pins kept in `dir`.
    #[new]
    fn new(dir: PathBuf) -> PyResult<Self> {
        e2e::Pins::open(&dir)
            .map(|pins| Self(Mutex::new(pins)))
            .map_err(py_err)
    }

    /// Records `name`'s device key `key`: returns `"new"` (first key of
    /// the name), `"known"`, or `"added"` (a new key for a known name:
    /// warn loudly).
    fn observe(&self, name: &str, key: &[u8]) -> PyResult<&'static str> {
        Ok(match self.lock().observe(name, key).map_err(py_err)? {
            e2e::Pin::New => "new",
            e2e::Pin::Known => "known",
            e2e::Pin::Added => "added",
        })
    }

    /// The keys pinned for `name`, sorted.
    fn keys<'py>(&self, py: Python<'py>, name: &str) -> Vec<Bound<'py, PyBytes>> {
        self.lock()
            .keys(name)
            .iter()
            .map(|k| bytes(py, k))
            .collect()
    }

    /// Unpins `key` of `name`; returns whether it was pinned.
    fn forget(&self, name: &str, key: &[u8]) -> PyResult<bool> {
        self.lock().forget(name, key).map_err(py_err)
    }
}

/// The safety number of members `a` and `b`, each `(name, [keys])`: 12
/// groups of 5 digits, the same whichever side computes it.
#[pyfunction]
fn safety_number(a: (String, Vec<Vec<u8>>), b: (String, Vec<Vec<u8>>)) -> String {
    e2e::safety_number((&a.0, &a.1), (&b.0, &b.1))
}

/// What a group message is, read from its clear header only (no group
/// needed): `(kind, room, epoch)` with kind one of `"commit"`,
/// `"proposal"`, `"application"`, `"welcome"`, `"group-info"`,
/// `"key-package"`; room and epoch are `None` where the kind has none (or
/// the group is not an eaxchat room). Raises `E2eError` for bytes that
/// are no MLS message this project uses.
#[pyfunction]
fn peek(data: &[u8]) -> PyResult<(&'static str, Option<String>, Option<u64>)> {
    use e2e::ds::Peeked;
    let peeked = e2e::ds::peek(data).map_err(|e| E2eError::new_err(format!("{e}")))?;
    let room = |group: &[u8]| {
        group
            .strip_prefix(b"eaxchat:")
            .and_then(|r| std::str::from_utf8(r).ok())
            .map(str::to_string)
    };
    Ok(match peeked {
        Peeked::Commit { group, epoch } => ("commit", room(&group), Some(epoch)),
        Peeked::Proposal { group, epoch } => ("proposal", room(&group), Some(epoch)),
        Peeked::Application { group, epoch } => ("application", room(&group), Some(epoch)),
        Peeked::Welcome { .. } => ("welcome", None, None),
        Peeked::GroupInfo { group, epoch } => ("group-info", room(&group), Some(epoch)),
        Peeked::KeyPackage => ("key-package", None, None),
    })
}

/// The device signature key in a KeyPackage of member `name` (as
/// `/keypackages NAME` gives them); raises `E2eError` for one that does
/// not check (signature, suite, lifetime) or is another member's.
#[pyfunction]
fn key_package_key<'py>(py: Python<'py>, data: &[u8], name: &str) -> PyResult<Bound<'py, PyBytes>> {
    let checked = e2e::ds::check_key_package(data, name)
        .map_err(|e| E2eError::new_err(format!("not a KeyPackage of {name}: {e}")))?;
    Ok(bytes(py, &checked.signature_key))
}

/// Lowercase hex of `data` (as keys are shown in warnings).
#[pyfunction]
fn hex(data: &[u8]) -> String {
    e2e::hex(data)
}

/// The module: the classes, functions and exceptions above.
#[pymodule]
fn eaxchat_mls(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add_class::<PyE2eRooms>()?;
    m.add_class::<PyPins>()?;
    m.add_function(wrap_pyfunction!(safety_number, m)?)?;
    m.add_function(wrap_pyfunction!(hex, m)?)?;
    m.add_function(wrap_pyfunction!(peek, m)?)?;
    m.add_function(wrap_pyfunction!(key_package_key, m)?)?;
    m.add("E2eError", py.get_type::<E2eError>())?;
    m.add("BeforeJoined", py.get_type::<BeforeJoined>())?;
    m.add("Removed", py.get_type::<Removed>())?;
    m.add("Duplicate", py.get_type::<Duplicate>())?;
    m.add("OwnMessage", py.get_type::<OwnMessage>())?;
    m.add("CommitPending", py.get_type::<CommitPending>())?;
    m.add("OwnPendingCommit", py.get_type::<OwnPendingCommit>())?;
    m.add("MissedCommit", py.get_type::<MissedCommit>())?;
    m.add("TooOld", py.get_type::<TooOld>())?;
    m.add("NoGroup", py.get_type::<NoGroup>())?;
    m.add("NotMember", py.get_type::<NotMember>())?;
    m.add("CIPHERSUITE", 1u16)?;
    Ok(())
}
