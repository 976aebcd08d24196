//! Free loopback ports.
//!
//! Picked at random below the kernel's ephemeral range (32768–60999 on Linux): a port taken from
//! that range can be handed out a moment later as the local port of any outgoing connection (a
//! client of another test, say) before the process meant to listen on it starts.

use std::net::TcpListener;
use std::sync::atomic::{AtomicU64, Ordering};

/// The lowest and the first past the highest port handed out.
const FIRST: u16 = 10_000;
const END: u16 = 32_768;

/// A port in `FIRST..END - count`, different on every call and in every process.
fn candidate(count: u16) -> u16 {
    static CALLS: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let mut x = nanos
        ^ (u64::from(std::process::id()) << 32)
        ^ CALLS
            .fetch_add(1, Ordering::Relaxed)
            .wrapping_mul(0x9E37_79B9_7F4A_7C15);
    // splitmix64's finaliser.
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^= x >> 31;
    let span = u64::from(END - FIRST - count);
    FIRST + (x % span) as u16
}

/// A loopback port nobody listens on now.
pub fn free_port() -> u16 {
    free_port_range(1)
}

/// The first of `count` consecutive loopback ports nobody listens on now.
pub fn free_port_range(count: u16) -> u16 {
    for _ in 0..1_000 {
        let base = candidate(count);
        if (0..count).all(|i| TcpListener::bind(("127.0.0.1", base + i)).is_ok()) {
            return base;
        }
    }
    panic!("no {count} consecutive free ports on 127.0.0.1 below {END}");
}
