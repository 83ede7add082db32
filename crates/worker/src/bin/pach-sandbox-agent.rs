//! The sandbox's agent as a binary of its own, for sandboxes whose host
//! process does not carry the agent itself (pachd does; the tests of this
//! crate use this one).

fn main() {
    pach_worker::agent::main()
}
