//! What eaxchat's tests and relay-bench share, so that no test holds
//! `unsafe` code or a copy of another's helpers: operating-system facts
//! ([`sys`]), the real binaries started on loopback with bounded waits
//! ([`relay`], and `chat` driven in pipe mode: [`chat`]).
//! `docs/architecture.md` is the map of the crates.

pub mod chat;
pub mod relay;
pub mod sys;

pub use chat::ChatProcess;
pub use relay::*;
