//! Node-to-node: sealed envelopes over HTTP with a queue per peer ([`net`]), what a peer posts
//! read a frame at a time and authenticated before it is kept ([`frames`]), protocol sessions
//! routed by id on their own threads ([`session`]), the messages and calls peers exchange
//! ([`wire`]), and what the node does with each one that arrives ([`dispatch`]).
//! `net`, `session` and `wire` use nothing of the node's services; `dispatch` hands messages to
//! them.

pub mod dispatch;
pub mod frames;
pub mod net;
pub mod session;
pub mod wire;
