//! The network address of the client a request comes from, for the bounds that are per client
//! rather than per principal (a made-up credential has no principal yet). The HTTP layer runs
//! each request inside [`scope`]; a service reads it with [`address`], and sees `None` outside a
//! request (a background task, a test). Uses nothing else of the crate.

use std::future::Future;
use std::net::IpAddr;

tokio::task_local! {
    static CALLER: IpAddr;
}

/// Runs `request` as coming from `address`.
pub async fn scope<F: Future>(address: IpAddr, request: F) -> F::Output {
    CALLER.scope(address, request).await
}

/// The address of the client whose request is running, if any.
pub fn address() -> Option<IpAddr> {
    CALLER.try_with(|address| *address).ok()
}

/// The 32-byte key of `address` for a [`super::limits::PrincipalLimits`] table.
pub fn key(address: IpAddr) -> [u8; 32] {
    let mut key = [0u8; 32];
    match address {
        IpAddr::V4(v4) => key[..4].copy_from_slice(&v4.octets()),
        IpAddr::V6(v6) => {
            key[0] = 6;
            key[1..17].copy_from_slice(&v6.octets());
        }
    }
    key
}
