//! What eaxchat's tests and relay-bench share, so that no test holds
//! `unsafe` code or a copy of another's helpers: operating-system facts
//! ([`sys`]), the real binaries started on loopback with bounded waits
//! ([`relay`], and `chat` driven in pipe mode: [`chat`]), the management
//! commands run to their end ([`run`]), sockets read as lines with a
//! bounded accept, for stand-in relays ([`lines`]), and the web listener's
//! `/metrics` ([`http`]).
//! `docs/architecture.md` is the map of the crates.

pub mod chat;
pub mod http;
pub mod lines;
pub mod relay;
pub mod run;
pub mod sys;

pub use chat::ChatProcess;
pub use http::{http_get, metric, web_address};
pub use lines::{Lines, accept_within};
pub use relay::*;
pub use run::{Run, add_static_member, run_relay, run_relay_line};
