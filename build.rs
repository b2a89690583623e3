//! Links the `bnetl` binary on Linux as a position-dependent executable (`-no-pie`).
//!
//! As a position-independent one, the dynamic loader relocated about 265,000 pointers
//! (DataFusion's and its dependencies' tables and vtables) at every start, copying 4.7 MB of
//! pages: 5 of the 7 ms of `bnetl --version`, and a `bnetl sql` COUNT(*) over a table took
//! 19 ms instead of 11 (perf stat, 20 runs). The seed's pipeline starts four processes, and
//! `sql` and `status` are commands people type. The price is ASLR for the binary's own code
//! (its libraries, stack and heap keep theirs), as with Go's default builds; deleting this
//! file builds a position-independent executable again.
fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux") {
        // The binaries only: test harnesses and build scripts link as before.
        println!("cargo:rustc-link-arg-bins=-no-pie");
    }
}
