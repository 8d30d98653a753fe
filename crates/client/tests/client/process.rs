//! A running `chat` binary, as the tests drive it: the test-support
//! crate's [`ChatProcess`](eaxchat_test_support::ChatProcess), shared with
//! the server's tests.

pub use eaxchat_test_support::ChatProcess;
