//! The hub tried from outside, as a sloppy integration or an attacker would:
//! an organisation's NATS connection sending every request it can
//! ([`nats`]), hostile HTTP clients and bodies ([`http`]), and receivers
//! that answer badly ([`webhooks`]). Each test states the guarantee it
//! checks; docs/security.md maps the threat model onto them.

mod http;
mod nats;
mod webhooks;
