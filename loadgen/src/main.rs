//! loadgen: a ZooKeeper-protocol load generator (see issue "loadgen"); not yet built.
fn main() {
    eprintln!("loadgen: not implemented yet");
    std::process::exit(2);
}
