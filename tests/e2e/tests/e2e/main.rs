//! End-to-end tests: each starts a real nats-server and the hub, talks HTTP
//! to the gateway and receives on real webhook servers. One test binary, one
//! module per capability.

mod backbone;
mod batch;
mod clocks;
mod common;
mod contract;
mod courts;
mod delivery;
mod disputes;
mod docs;
mod evidence;
mod gateway_status;
mod gm;
mod idempotency;
mod inbox;
mod jurisdiction;
mod letters;
mod monthly;
mod nats_org;
mod read_side;
mod receipts;
mod replies;
mod routing;
mod supervision_read;
