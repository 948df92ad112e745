//! Sigil's shared wire types: the JSON bodies nodes send and clients read, declared once so the
//! node (`sigil-node`) and the SDK (`sigil-client`) cannot drift apart. No I/O, no logic.

mod cid;
mod web;

pub use cid::{Cid, CidError};
pub use web::*;
