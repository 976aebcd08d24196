//! Free loopback ports.

use std::net::TcpListener;

/// A loopback port nobody listens on now.
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local address").port()
}

/// The first of `count` consecutive loopback ports nobody listens on now.
pub fn free_port_range(count: u16) -> u16 {
    for _ in 0..200 {
        let base = free_port();
        if base > 65_000 {
            continue;
        }
        if (0..count).all(|i| TcpListener::bind(("127.0.0.1", base + i)).is_ok()) {
            return base;
        }
    }
    panic!("no {count} consecutive free ports on 127.0.0.1");
}
