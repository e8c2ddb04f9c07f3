//! `osc`: Nest's command line. Not written yet: until it is, Nest is driven
//! with python-zunclient, `openstack appcontainer` or plain HTTP (see
//! docs/api.md). It says so rather than pretending to work.

use std::process::ExitCode;

fn main() -> ExitCode {
    eprintln!(
        "osc is not implemented yet. Use python-zunclient (`zun`), `openstack appcontainer`, \
         or the HTTP API described in docs/api.md."
    );
    ExitCode::from(2)
}
