//! The x402 wire types the gateway speaks, defined once in [`mycel_types::x402`] (the payer in
//! `mycel-client` builds the same headers) and named here for the gateway's modules.

pub use mycel_types::x402::*;
