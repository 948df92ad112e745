//! Conditions in memory: parsing with paths, canonical hashing, and evaluation against a fake
//! chain and action runner.

mod eval;
mod parse;
