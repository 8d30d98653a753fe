//! The one id a connection has everywhere in the relay: in the slab of
//! peers, the rooms, the roster, the guard and the write sweep. A leaf
//! module, so those modules need not import the relay to name a connection.
//! It holds no state and must never import anything of the crate.

/// Identifies a connection while it is open. Ids are reused after removal.
pub type ConnId = usize;
