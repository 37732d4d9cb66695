//! What tapline's tests share, so that each helper exists once: test networks (namespaces and
//! veth pairs), free ports and tiny HTTP clients, guards that stop child processes, temporary
//! directories, mock components, the one in-process harness that runs a pipeline graph from
//! YAML, and [`eventually`] to wait for a condition instead of sleeping.
//!
//! A dev-dependency only: nothing here ships in the agent.

pub mod fixtures;
pub mod harness;
pub mod mock;
pub mod net;
pub mod netns;
pub mod poll;
pub mod process;
pub mod temp;
pub mod vm;

pub use harness::{build_context, start_graph, Agent};
pub use mock::{Collect, Feed};
pub use net::{free_port, wait_port};
pub use poll::{eventually, eventually_async};
pub use process::{need, ChildGuard};
pub use temp::tempdir;
