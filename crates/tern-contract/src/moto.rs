//! Where the AWS contract runs find their moto server.
//!
//! `cargo xtask test` installs moto, starts it on a free loopback port with the Step Functions interpreter
//! switched on, exports its address as `TERN_TEST_AWS_ENDPOINT` and stops it afterwards. Without that
//! server the AWS contract cases fail with a message that says so — they are never skipped.

use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

pub const ENDPOINT_ENV: &str = "TERN_TEST_AWS_ENDPOINT";
/// The region every AWS contract run uses.
pub const REGION: &str = "us-east-1";

/// The moto endpoint, checked to accept connections. Panics (failing the case) when it is not configured
/// or not reachable.
pub fn endpoint() -> String {
    let endpoint = std::env::var(ENDPOINT_ENV).unwrap_or_else(|_| {
        panic!("{ENDPOINT_ENV} is not set: the AWS contract tests need a moto server; run `cargo xtask test`, which starts one")
    });
    let authority = endpoint.trim_start_matches("http://").trim_end_matches('/');
    let reachable = authority
        .to_socket_addrs()
        .ok()
        .and_then(|mut addrs| addrs.next())
        .is_some_and(|addr| TcpStream::connect_timeout(&addr, Duration::from_secs(2)).is_ok());
    assert!(
        reachable,
        "moto is not reachable at {endpoint} ({ENDPOINT_ENV}); start it with `cargo xtask moto`"
    );
    endpoint
}
