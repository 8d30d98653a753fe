//! Python binding (PyO3) over `mlscore`: the same few operations the Rust client uses,
//! so Python speaks MLS through openmls and never implements any of it.

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

fn py_err(e: mlscore::Error) -> PyErr {
    PyValueError::new_err(e.0)
}

/// One device's MLS state (a signature key, a basic credential and at most one group).
#[pyclass(unsendable)]
struct Client(mlscore::Client);

#[pymethods]
impl Client {
    #[new]
    fn new(name: &str) -> PyResult<Self> {
        Ok(Self(mlscore::Client::new(name).map_err(py_err)?))
    }

    /// A fresh KeyPackage (MLSMessage bytes).
    fn key_package(&mut self) -> PyResult<Vec<u8>> {
        self.0.key_package().map_err(py_err)
    }

    /// Creates a group; `external_sender` is the relay's signature key, if any.
    #[pyo3(signature = (group_id, external_sender=None))]
    fn create_group(&mut self, group_id: &[u8], external_sender: Option<Vec<u8>>) -> PyResult<()> {
        let senders: Vec<(Vec<u8>, String)> = external_sender.into_iter().map(|k| (k, "relay".to_string())).collect();
        self.0.create_group(group_id, &senders).map_err(py_err)
    }

    /// Joins from a Welcome; returns the epoch.
    fn join(&mut self, welcome: &[u8]) -> PyResult<u64> {
        self.0.join(welcome).map_err(py_err)
    }

    /// Commits adding these KeyPackages; returns (commit, welcome).
    fn add_members(&mut self, key_packages: Vec<Vec<u8>>) -> PyResult<(Vec<u8>, Vec<u8>)> {
        self.0.add_members(&key_packages).map_err(py_err)
    }

    /// Commits removing the member named `name`; returns the commit.
    fn remove_member(&mut self, name: &str) -> PyResult<Vec<u8>> {
        self.0.remove_member(name).map_err(py_err)
    }

    /// Commits the pending proposals (e.g. the relay's external Remove).
    fn commit_pending(&mut self) -> PyResult<Vec<u8>> {
        self.0.commit_pending().map_err(py_err)
    }

    /// The relay accepted our pending commit; returns the new epoch.
    fn confirm(&mut self) -> PyResult<u64> {
        self.0.confirm().map_err(py_err)
    }

    /// The relay refused our pending commit: forget it.
    fn discard(&mut self) -> PyResult<()> {
        self.0.discard().map_err(py_err)
    }

    /// Encrypts an application message.
    fn encrypt(&mut self, plaintext: &[u8]) -> PyResult<Vec<u8>> {
        self.0.encrypt(plaintext).map_err(py_err)
    }

    /// Processes one message: ("app", plaintext) | ("commit", epoch, removed) | ("proposal",).
    fn process(&mut self, py: Python<'_>, message: &[u8]) -> PyResult<Py<PyAny>> {
        Ok(match self.0.process(message).map_err(py_err)? {
            mlscore::Event::Application(text) => ("app", pyo3::types::PyBytes::new(py, &text)).into_pyobject(py)?.into_any().unbind(),
            mlscore::Event::Commit { epoch, removed } => ("commit", epoch, removed).into_pyobject(py)?.into_any().unbind(),
            mlscore::Event::Proposal => ("proposal",).into_pyobject(py)?.into_any().unbind(),
        })
    }

    /// The group's epoch.
    fn epoch(&mut self) -> PyResult<u64> {
        self.0.epoch().map_err(py_err)
    }

    /// The members' names.
    fn members(&mut self) -> PyResult<Vec<String>> {
        self.0.members().map_err(py_err)
    }

    /// Leaf index of a member.
    fn leaf_of(&mut self, name: &str) -> PyResult<u32> {
        self.0.leaf_of(name).map_err(py_err)
    }
}

#[pymodule]
fn eaxmls(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Client>()
}
